"""Ultralytics' own experiment loggers stay off in medpipe's trainings (with mlflow installed, ultralytics would
write an mlflow.db and mlruns/ into the working folder); the user's settings file is left as it is."""

from __future__ import annotations

from pathlib import Path


def test_ultralytics_loggers_off_in_this_process_only():
    from medpipe.detection.env import prepare_ultralytics_env

    prepare_ultralytics_env()  # before ultralytics is imported (offline, medpipe's config folder)
    from ultralytics.utils import SETTINGS

    from medpipe.detection.training import ULTRALYTICS_LOGGERS, disable_ultralytics_loggers

    on = [k for k in ULTRALYTICS_LOGGERS if k in SETTINGS]
    assert "mlflow" in on
    for k in on:
        dict.__setitem__(SETTINGS, k, True)  # as a fresh settings file has them
    before = Path(SETTINGS.file).read_text()
    disable_ultralytics_loggers()
    assert all(SETTINGS[k] is False for k in on)
    assert Path(SETTINGS.file).read_text() == before
