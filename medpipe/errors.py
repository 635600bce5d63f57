"""Errors that are the user's to fix: the CLI prints them as one paragraph, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or bad usage. The message names the file/field and says what to do."""


class DataError(UserError):
    """A dataset on disk does not look like what was asked for."""


def find_user_error(exc: BaseException) -> UserError | None:
    """The :class:`UserError` behind ``exc``, following ``__cause__``/``__context__`` chains.

    MONAI wraps exceptions raised while it evaluates a config expression or instantiates a
    component (``RuntimeError("Failed to evaluate ...") from e``); the user's mistake is the
    innermost :class:`UserError`.

    Example:
        >>> try:
        ...     try:
        ...         raise UserError("--fold 7: out of range")
        ...     except UserError as e:
        ...         raise RuntimeError("Failed to evaluate") from e
        ... except RuntimeError as outer:
        ...     str(find_user_error(outer))
        '--fold 7: out of range'
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, UserError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
