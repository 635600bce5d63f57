"""Ordinary mistakes with the bundle and pipeline commands: exit 2, one paragraph naming the field or
file and what to do, no traceback, and nothing left behind.

Each case runs ``medpipe.cli.main`` in this process (the checks happen before any workflow starts,
so no training runs here). Prepare/synth mistakes are tested in tests/prepare and tests/data_prep.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medpipe.cli import main


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny prepared PHE-SICH dataset (3 folds) and the raw download it came from."""
    from data_prep import phe_sich
    from tests.conftest import make_png_dataset

    root = tmp_path_factory.mktemp("errors")
    make_png_dataset(root / "raw")
    phe_sich.prepare(root / "raw", root / "prepared", {"folds": 3}, workers=1, progress=None)
    return root


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """A sich_cls run folder with a real (untrained) checkpoint and its settings file."""
    import torch

    from medpipe.bundle.checkpoint import write_model_settings
    from medpipe.networks.classification import build_classifier

    run = tmp_path_factory.mktemp("fake_run")
    (run / "models").mkdir()
    torch.save(build_classifier("resnet18", 1, 2).state_dict(), run / "models/model.pt")
    write_model_settings(run / "models", "sich_cls", {
        "task": "binary", "class_names": ["no_phe", "phe"], "label_key": "label", "in_channels": 1,
        "input_spec": {"channels": 1, "window": [40, 80], "slice_pattern": None}, "network_name": "resnet18",
        "image_size": 32, "normalization": "imagenet", "fold": 0})
    other = tmp_path_factory.mktemp("other_run")
    (other / "models").mkdir()
    torch.save({}, other / "models/model.pt")
    write_model_settings(other / "models", "sich_seg", {"image_size": 32})
    return run, other


def _err(capsys, argv) -> str:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors
        rc = e.code
    captured = capsys.readouterr()
    assert rc == 2, f"{argv}: exit {rc}\n{captured.out[-2000:]}\n{captured.err[-2000:]}"
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    return err


def _one_paragraph(err: str) -> None:
    lines = [ln for ln in err.splitlines() if not ln.startswith("usage:") and not ln.startswith(" ")]
    assert len(lines) == 1, err


TRAIN_CASES = [  # (extra argv, words the message must contain)
    (["--max_epochs", "0"], ["--max_epochs 0", "at least 1"]),
    (["--max_epochs", "-1"], ["--max_epochs -1"]),
    (["--batch_size", "0"], ["--batch_size 0"]),
    (["--image_size", "abc"], ["--image_size abc", "whole number"]),
    (["--image_size", "7"], ["--image_size 7", "at least"]),
    (["--fold", "7"], ["--fold 7", "0..2"]),
    (["--device", "cuda"], ["--device cuda", "no CUDA GPU"]),
    (["--learnin_rate", "0.1"], ["--learnin_rate", "did you mean --learning_rate"]),
    (["--num_workers", "-2"], ["--num_workers -2"]),
    (["--time_limit_s", "abc"], ["--time_limit_s abc"]),
    (["--preset", "fastest"], ["--preset fastest"]),
]


@pytest.mark.parametrize("extra,words", TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_train_refuses_bad_settings_before_anything_is_written(prepared, tmp_path, capsys, extra, words):
    out = tmp_path / "run"
    err = _err(capsys, ["train", "sich_cls", "--dataset_dir", str(prepared / "prepared"), "--output_dir", str(out),
                        *extra])
    _one_paragraph(err)
    for w in words:
        assert w in err, err
    assert not out.exists()  # a failed start leaves no half-made run folder


@pytest.mark.parametrize("case", ["missing", "raw_download", "other_labels", "no_folds"])
def test_train_refuses_a_wrong_dataset_dir(prepared, tmp_path, capsys, case):
    if case == "missing":
        ds, word = tmp_path / "nothing", "does not exist"
    elif case == "raw_download":
        ds, word = prepared / "raw", "prepare it first"
    else:
        ds = tmp_path / case
        ds.mkdir()
        dl = json.loads((prepared / "prepared/datalist.json").read_text())
        if case == "other_labels":  # e.g. a chest X-ray multi-label datalist given to a segmentation bundle
            dl["tasks"] = {"labels": {"kind": "multilabel", "class_names": ["a", "b"]}}
            word = "has no 'mask' labels"
        else:
            for r in dl["training"]:
                r.pop("fold")
            word = "has no integer 'fold'"
        (ds / "datalist.json").write_text(json.dumps(dl))
    bundle = "sich_seg" if case == "other_labels" else "sich_cls"
    err = _err(capsys, ["train", bundle, "--dataset_dir", str(ds), "--output_dir", str(tmp_path / "run"),
                        "--max_epochs", "1"])
    _one_paragraph(err)
    assert word in err and str(ds) in err
    assert not (tmp_path / "run").exists()


def test_checkpoint_mistakes(fake_run, tmp_path, capsys):
    run, other = fake_run
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    bare = tmp_path / "bare" / "model.pt"
    bare.parent.mkdir()
    bare.write_bytes((run / "models/model.pt").read_bytes())
    cases = [
        (["infer", "sich_cls", "--ckpt_path", str(tmp_path / "absent.pt"), "--input", str(tmp_path)], "no such file"),
        (["infer", "sich_cls", "--ckpt_path", str(text), "--input", str(tmp_path)], "not a PyTorch checkpoint"),
        (["infer", "sich_cls", "--ckpt_path", str(other / "models/model.pt"), "--input", str(tmp_path)],
         "trained by bundle 'sich_seg'"),
        (["infer", "sich_cls", "--ckpt_path", str(bare), "--input", str(tmp_path)], "no settings file beside it"),
        (["evaluate", "sich_cls", "--ckpt_path", str(run / "models")], "is a folder"),
        (["export", "sich_cls", "--ckpt_path", str(text), "--format", "onnx"], "not a PyTorch checkpoint"),
    ]
    for argv, word in cases:
        err = _err(capsys, argv)
        _one_paragraph(err)
        assert word in err, (argv, err)


def test_inference_input_mistakes(fake_run, tmp_path, capsys):
    run, _ = fake_run
    ckpt = str(run / "models/model.pt")
    text = tmp_path / "slice.png"
    text.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    for inp, word in ((text, "not a PNG or JPEG image"), (empty, "no PNG/JPG slices"), (tmp_path / "x", "no such file")):
        err = _err(capsys, ["infer", "sich_cls", "--ckpt_path", ckpt, "--input", str(inp), "--output_dir",
                            str(tmp_path / "out")])
        _one_paragraph(err)
        assert word in err and str(inp) in err
    assert not (tmp_path / "out").exists()


def test_export_output_mistakes(fake_run, tmp_path, capsys):
    run, _ = fake_run
    ckpt = str(run / "models/model.pt")
    for out, word in ((tmp_path, "is a folder"), (tmp_path / "no" / "dir" / "m.onnx", "does not exist")):
        err = _err(capsys, ["export", "sich_cls", "--ckpt_path", ckpt, "--format", "onnx", "--output", str(out)])
        _one_paragraph(err)
        assert word in err


def test_evaluate_records_and_conflicts(fake_run, prepared, capsys):
    run, _ = fake_run
    ckpt = str(run / "models/model.pt")
    ds = str(prepared / "prepared")
    for extra, word in ((["--records", "fold:9"], "--records fold:9"), (["--records", "train"], "--records train"),
                        (["--network_name", "densenet121"], "trained with \"resnet18\""),
                        (["--fold", "2"], "--fold 2 (trained with 0)")):
        err = _err(capsys, ["evaluate", "sich_cls", "--ckpt_path", ckpt, "--dataset_dir", ds, *extra])
        _one_paragraph(err)
        assert word in err, err


def test_unknown_commands_and_bundles_get_a_suggestion(capsys):
    err = _err(capsys, ["trian", "sich_cls"])
    assert "did you mean 'train'" in err
    err = _err(capsys, ["train", "sich_clss"])
    assert "did you mean 'sich_cls'" in err


PIPELINES = {
    "a list": "- id: x\n  action: report\n",
    "unknown placeholder": "name: t\nparams: {work_dir: /tmp/w}\nsteps:\n  - id: report\n    action: report\n"
                           "    args: {work_dir: '{work_dri}', out: '{work_dir}/r', data_dir: x}\n",
    "step argument typo": "name: t\nparams: {work_dir: /tmp/w}\nsteps:\n  - id: cls\n    action: bundle\n"
                          "    args: {bundle: sich_cls, output_dir: '{work_dir}/c', max_epoch: 2}\n",
}


@pytest.mark.parametrize("case", list(PIPELINES))
def test_pipeline_file_mistakes(tmp_path, capsys, case):
    p = tmp_path / "p.yaml"
    p.write_text(PIPELINES[case])
    err = _err(capsys, ["run", str(p)])
    _one_paragraph(err)
    assert str(p) in err
    word = {"a list": "holds a list", "unknown placeholder": "did you mean {work_dir}",
            "step argument typo": "did you mean --max_epochs"}[case]
    assert word in err, err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception) as e:
        main(["--debug", "train", "sich_cls", "--dataset_dir", str(tmp_path / "nothing")])
    assert "no datalist.json" in str(e.value)


def test_typo_in_a_pipeline_override_is_refused(capsys):
    err = _err(capsys, ["run", str(Path(__file__).resolve().parents[2] / "pipelines/phe_sich.yaml"), "--cls_epoch", "2"])
    assert "did you mean --cls_epochs" in err
