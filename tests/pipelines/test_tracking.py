"""`medpipe run PIPELINE --tracking mlflow`: passed on to every training step, and to nothing else."""

from __future__ import annotations

from medpipe.pipelines.runner import PipelineRunner, load_pipeline
from tests.conftest import REPO


def test_tracking_reaches_the_training_steps_only(tmp_path, capfd):
    p = load_pipeline(REPO / "pipelines/phe_sich.yaml", {"work_dir": str(tmp_path / "w")})
    assert PipelineRunner(p, dry_run=True, tracking="mlflow").run() == 0
    cmds = [x.strip()[2:] for x in capfd.readouterr().out.splitlines() if x.strip().startswith("$ medpipe")]
    train = [c for c in cmds if c.startswith("medpipe train")]
    assert len(train) == 3 and all(c.endswith("--tracking mlflow") for c in train)
    assert all("--tracking" not in c for c in cmds if not c.startswith("medpipe train"))
    assert PipelineRunner(p, dry_run=True).run() == 0  # default: the commands as before
    assert "--tracking" not in capfd.readouterr().out


def test_cli_option(tmp_path, capfd):
    from medpipe.cli import main

    rc = main(["run", str(REPO / "pipelines/phe_sich.yaml"), "--dry-run", "--tracking", "mlflow",
               "--work_dir", str(tmp_path / "w")])
    assert rc in (0, None)
    assert "--tracking mlflow" in capfd.readouterr().out
