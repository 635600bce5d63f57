"""Quiet logs: third-party noise filtered, medpipe's own lines kept, numbers at 4 significant digits.

:func:`quiet_third_party` is applied by ``medpipe train|evaluate|infer|export`` (in
:func:`medpipe.bundle.runner.execute`, before MONAI parses a config) and, for
``python -m monai.bundle run`` users, by the first entry of each bundle config's ``imports``
(``"$from medpipe.utils.logs import quieted"``: MONAI evaluates the import statements of a config
before any other expression, and importing that name is what quiets); each bundle's
``configs/logging.conf`` sets the same logger levels (:data:`QUIET_LOGGERS`).

MONAI warns about two things before any config expression can run (its notice that a config is
code, and the ``optional_packages_version`` key the offline schema still requires); only
:func:`medpipe.bundle.runner.execute` is early enough to filter those.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_third_party", "QUIET_WARNINGS", "QUIET_LOGGERS", "QUIET_MESSAGES", "sig", "duration"]

#: (message regex, category) of third-party warnings that say nothing a medpipe user can act on
QUIET_WARNINGS = (
    # MONAI's notice that a config's "_target_" and "$" values run as code: these configs are this checkout's own
    (r"parsing config_file ", UserWarning),
    # MONAI renames the key, but bundles/meta_schema.json (the offline model-zoo schema) requires it
    (r"Detected deprecated name 'optional_packages_version'", Warning),
    # RandCropByPosNegLabeld on a slice without lesion takes background crops, as it should
    (r"Num foregrounds 0,", UserWarning),
)
#: logger -> level: ignite/MONAI engine chatter ("Engine run resuming", "Epoch[N] Complete",
#: "Engine run finished", "Got new best metric"); medpipe prints one line per epoch instead
QUIET_LOGGERS = {"ignite": logging.WARNING, "monai": logging.WARNING,
                 # torch.onnx's graph optimizer logs each rewrite pass at INFO
                 "onnxscript": logging.WARNING, "onnx_ir": logging.WARNING}
#: INFO lines logged on the root logger by third-party handlers (MONAI's CheckpointLoader)
QUIET_MESSAGES = ("Restored all variables",)


class _DropMessages(logging.Filter):
    """Drops INFO-or-lower records that start with one of ``prefixes``."""

    def __init__(self, prefixes) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        msg = record.msg if isinstance(record.msg, str) else str(record.msg)
        return not msg.startswith(self.prefixes)


def quiet_third_party() -> None:
    """Install :data:`QUIET_WARNINGS` filters, :data:`QUIET_LOGGERS` levels and the :data:`QUIET_MESSAGES` filter.

    Idempotent; the ``medpipe`` logger is left as it is (INFO in the bundles' logging.conf).
    Data-loader workers started by fork inherit the warning filters.

    Example:
        >>> quiet_third_party()
        >>> logging.getLogger("ignite").level == logging.WARNING
        True
    """
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    if not any(isinstance(f, _DropMessages) for f in root.filters):
        root.addFilter(_DropMessages(QUIET_MESSAGES))


def __getattr__(name: str):
    # ``"$from medpipe.utils.logs import quieted"`` in a bundle config's imports: MONAI runs only the
    # import statements of that list (a plain "$call()" there is never evaluated), so the import does it
    if name == "quieted":
        quiet_third_party()
        return True
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sig(value, digits: int = 4) -> str:
    """A number for a log line: ``digits`` significant digits; ``n/a`` for None; other values as text.

    Example:
        >>> sig(0.2229934924078091), sig(12345.678), sig(None), sig(3)
        ('0.223', '1.235e+04', 'n/a', '3')
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{int(digits)}g}"


def duration(seconds: float) -> str:
    """A duration for a progress line: seconds under 2 minutes, minutes under 2 hours, else hours.

    Example:
        >>> duration(85.2), duration(840), duration(12000)
        ('85 s', '14 min', '3.3 h')
    """
    s = max(0.0, float(seconds))
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"
