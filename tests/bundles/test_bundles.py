"""One table of smoke tests over every registered bundle (rows in tests/bundles/conftest.py).

Each bundle is trained once for two epochs on a tiny synthetic version of its registered dataset with
``medpipe train`` (under a network guard), then, from its checkpoint alone: evaluated with ``medpipe
evaluate --ckpt_path``, run on a folder (and, for datasets of volumes, on a NIfTI volume) with
``python -m monai.bundle run --config_file inference.json --ckpt_path``, exported to TorchScript and
ONNX with a parity check, resumed after a kill -9 and, where it has a multi-GPU config, trained under
torchrun with a time limit.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medpipe.bundle import BUNDLES
from tests.bundles.conftest import (BUNDLE_ROWS, RUNTIME, bundle_env, dataset_of, read_json, run_bundle,
                                    start_then_kill)
from tests.conftest import REPO

NAMES = list(BUNDLE_ROWS)
MONAI = [n for n in NAMES if BUNDLES[n].engine == "monai"]
DDP = [n for n in NAMES if BUNDLE_ROWS[n]["ddp"]]
CONTRACT_KEYS = {
    "classification": {"accuracy", "precision", "recall", "f1", "specificity", "auroc", "confusion_matrix", "per_class"},
    "multilabel": {"auroc_per_class", "auroc_mean", "f1_micro", "f1_macro"},
    "segmentation": {"dice", "iou", "sensitivity", "specificity", "dice_per_case_mean", "pixel_confusion"},
    "detection": {"map50", "map50_95", "precision", "recall", "slice_level"},
}
BUNDLE_FILES = ["LICENSE", "configs/metadata.json", "configs/train.json", "configs/evaluate.json",
                "configs/inference.json", "configs/multi_gpu_train.json", "configs/logging.conf", "docs/README.md"]


def _runtime(name: str) -> list[str]:
    return RUNTIME + BUNDLE_ROWS[name]["runtime"]


def _size(name: str) -> int:
    t = BUNDLE_ROWS[name]["train"]
    return int(t[t.index("--image_size") + 1])


def test_every_registered_bundle_has_a_row_and_the_contract_files():
    assert set(BUNDLE_ROWS) == set(BUNDLES)
    for name in BUNDLES:
        for f in BUNDLE_FILES:
            assert (REPO / "bundles" / name / f).is_file(), f"bundles/{name}/{f} missing"


@pytest.mark.parametrize("name", NAMES)
def test_train_writes_checkpoint_settings_and_run_record(trained_bundle, name):
    run = trained_bundle(name)
    side = read_json(run / "models/model.json")
    assert side["bundle"] == name and side["format"] == "medpipe-model/1"
    s = side["settings"]
    # the stored slices' channels, as the dataset declares them (CT in three HU windows: 3)
    data_channels = (read_json(Path(side["dataset"]["dir"]) / "datalist.json").get("input") or {}).get("channels", 1)
    assert s["image_size"] == _size(name) and s["class_names"] and s["task"] and s["input_spec"]["channels"] == data_channels
    assert side["dataset"]["datalist_sha256"] and side["medpipe_version"]
    cfg = read_json(run / "run_config.json")
    assert cfg["settings"]["max_epochs"] == 2 and cfg["settings"]["image_size"] == _size(name)  # fully resolved
    assert cfg["config"]["bundle_root"] == f"bundles/{name}" and cfg["datalist_sha256"] == side["dataset"]["datalist_sha256"]
    assert read_json(run / "history.json")["epoch"] == [1, 2]
    _assert_tensorboard(run, name)
    log = (run / "train_log.txt").read_text()
    assert "running: python -m monai.bundle run --config_file bundles/" in log
    assert log.count("epoch 2/2") == 1 and "Traceback" not in log


def _assert_tensorboard(run: Path, name: str) -> None:
    """The run's event files, read back: each scalar once (one tag per quantity, one value per step, every
    epoch) under train/ and val/ names, and the overlay grid of the fixed slices once per validation."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[int]] = {}
    images: dict[str, list[int]] = {}
    for f in sorted((run / "tb").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        for t in acc.Tags()["scalars"]:
            scalars.setdefault(t, []).extend(e.step for e in acc.Scalars(t))
        for t in acc.Tags()["images"]:
            images.setdefault(t, []).extend(e.step for e in acc.Images(t))
    key = {"classification": "val/f1", "segmentation": "val/dice", "detection": "val/map50"}[BUNDLES[name].task]
    assert key in scalars and "train/lr" in scalars, sorted(scalars)
    assert any(t.startswith("train/") and t.endswith("loss") for t in scalars), sorted(scalars)
    quantities: dict[tuple, str] = {}
    for tag, steps in scalars.items():
        assert tag.split("/")[0] in ("train", "val"), f"{tag}: not a train/ or val/ name"
        assert len(steps) == len(set(steps)), f"{tag} written more than once at a step: {steps}"
        if not tag.endswith("_iteration"):
            assert sorted(steps) == [1, 2], f"{tag}: steps {steps}, expected one value per epoch"
        parts = tag.lower().split("/")
        q = (any(p.startswith("val") for p in parts[:-1]) or parts[-1].startswith("val_"),
             parts[-1].removeprefix("val_").removesuffix("_iteration"), "iteration" in tag.lower())
        assert q not in quantities, f"{tag} and {quantities[q]} are the same quantity"
        quantities[q] = tag
    assert sorted(images.get("val/overlays", [])) == [1, 2], f"expected one val/overlays grid per epoch: {images}"


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_from_the_checkpoint_alone(trained_bundle, tiny_dataset, tmp_path, name):
    """--ckpt_path is all evaluation needs; on another dataset folder (the external-test path), other
    records and any --output_dir (statistics and curves are found through the checkpoint)."""
    run = trained_bundle(name)
    data = dataset_of(name, tiny_dataset)
    proc = run_bundle(["medpipe", "evaluate", name, "--ckpt_path", str(run / "models/model.pt"), "--dataset_dir",
                       str(data), "--records", "all", "--output_dir", str(tmp_path), *_runtime(name)])
    assert "running: python -m monai.bundle run" in proc.stdout
    m = read_json(tmp_path / "eval/metrics.json")
    assert CONTRACT_KEYS["multilabel" if m.get("kind") == "multilabel" else BUNDLES[name].task] <= set(m)
    dl = read_json(data / "datalist.json")
    n = len(dl["training"]) + len(dl.get("test", []))
    assert (m.get("n") or m.get("n_cases") or m.get("n_slices")) == n and m["records"] == "all"
    assert m["fold"] == read_json(run / "models/model.json")["settings"]["fold"]
    assert (tmp_path / "predictions.csv").is_file()
    pngs = list((tmp_path / "eval").rglob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert (tmp_path / "eval/training_curves.png").is_file()


def test_evaluate_writes_beside_its_run_unless_told_otherwise(tmp_path):
    from medpipe.bundle.overrides import output_dir_for_evaluation as where

    ckpt = tmp_path / "run/models/model.pt"
    data = str(tmp_path / "data/phe")
    assert where(str(ckpt), None, data, "val") == str(tmp_path / "run")
    assert where(str(ckpt), data, data, "val") == str(tmp_path / "run")
    assert where(str(ckpt), data, data, "test") == str(tmp_path / "run/eval-phe-test")
    assert where(str(ckpt), str(tmp_path / "cq500"), data, "fold:2") == str(tmp_path / "run/eval-cq500-fold2")


@pytest.mark.parametrize("source", ["folder", "nifti"])
@pytest.mark.parametrize("name", NAMES)
def test_infer_with_monai_bundle_from_the_checkpoint_alone(trained_bundle, tiny_dataset, tmp_path, name, source):
    data = dataset_of(name, tiny_dataset)
    dl = read_json(data / "datalist.json")
    if source == "nifti" and not (dl.get("input") or {}).get("window"):
        pytest.skip(f"{BUNDLES[name].dataset} holds 2D images, not volumes")
    run = trained_bundle(name)
    if source == "folder":
        inp = data / Path(dl["training"][0]["image"]).parent
        n = len([f for f in inp.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg")])
    else:
        import nibabel as nib

        inp = (sorted((data.parent / "raw/SubdatasetA_NIFIT/NIFIT/set").glob("*.nii.gz"))
               or sorted((data.parent / "raw").rglob("*.nii.gz")))[0]  # PHE-SICH's layout, else any (ankle-ct)
        n = nib.load(inp).shape[2]
    proc = run_bundle(["monai.bundle", "run", "--config_file", f"bundles/{name}/configs/inference.json",
                       "--ckpt_path", str(run / "models/model.pt"), "--input", str(inp), "--output_dir", str(tmp_path),
                       *_runtime(name)])
    name_csv = "slice_predictions.csv" if BUNDLES[name].task == "detection" else "predictions.csv"
    rows = list(csv.DictReader(open(tmp_path / name_csv)))
    assert len(rows) == n, proc.stdout[-2000:]
    if source == "nifti":
        assert [int(r["slice"]) for r in rows] == list(range(n))
    else:  # named by the dataset's file-name pattern, as prepare named the records
        patient_of = {Path(r["image"]).name: str(r["patient"]) for r in dl["training"] + dl.get("test", [])}
        # file names give the patient only where the dataset declares how (RSNA ICH's ID_<sop>.png do not)
        assert not (dl.get("input") or {}).get("slice_pattern") or all(r["patient"] == patient_of[Path(r["image"]).name] for r in rows if Path(r["image"]).name in patient_of)
        if BUNDLES[name].dataset == "phe-sich":
            assert rows[0]["patient"] == "0001" and rows[0]["slice"] == "0"
    if BUNDLES[name].task == "segmentation" and source == "nifti":
        import nibabel as nib
        import numpy as np

        out = nib.load(tmp_path / "masks" / inp.name.replace(".nii.gz", "_phe.nii.gz"))
        assert out.shape == nib.load(inp).shape and np.allclose(out.affine, nib.load(inp).affine)


@pytest.mark.parametrize("name", NAMES)
def test_an_override_that_conflicts_with_the_checkpoint_is_refused(trained_bundle, tiny_dataset, capsys, name):
    from medpipe.cli import main

    run = trained_bundle(name)
    other = str(_size(name) * 2)
    images = dataset_of(name, tiny_dataset) / Path(read_json(dataset_of(name, tiny_dataset) / "datalist.json")
                                                   ["training"][0]["image"]).parent
    for argv in (["infer", name, "--ckpt_path", str(run / "models/model.pt"), "--input", str(images),
                  "--image_size", other],
                 ["evaluate", name, "--ckpt_path", str(run / "models/model.pt"), "--image_size", other]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and err.count("\n") == 0
        assert f"--image_size {other} (trained with {_size(name)})" in err


@pytest.mark.parametrize("name", MONAI)
def test_standard_monai_ckpt_export(trained_bundle, tmp_path, name):
    """MONAI's own ckpt_export (scripting, no trace) loads model.pt strictly into inference.json's network_def."""
    from medpipe.bundle.export import check_parity

    ckpt = str(trained_bundle(name) / "models/model.pt")
    out = tmp_path / "model.ts"
    run_bundle(["monai.bundle", "ckpt_export", "network_def", "--filepath", str(out), "--ckpt_file", ckpt,
                "--ckpt_path", ckpt, "--meta_file", f"bundles/{name}/configs/metadata.json", "--config_file",
                f"bundles/{name}/configs/inference.json", "--bundle_root", f"bundles/{name}"])
    assert check_parity(name, ckpt, str(out), "torchscript") <= 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_resume_after_kill_and_no_orphan(tiny_dataset, tmp_path, name):
    """kill -9 of `medpipe train` after its first epoch: nothing keeps training; a re-run resumes and finishes."""
    row = BUNDLE_ROWS[name]
    args = ["medpipe", "train", name, "--dataset_dir", str(dataset_of(name, tiny_dataset)), "--output_dir",
            str(tmp_path), "--max_epochs",
            "2", *row["train"], *_runtime(name)]
    # the last file an epoch writes: MONAI engines save checkpoint_last.pt after the history; ultralytics
    # writes its last.pt before medpipe's history
    marker = "models/checkpoint_last.pt" if BUNDLES[name].engine == "monai" else "history.json"
    start_then_kill(args, tmp_path / marker)
    killed = read_json(tmp_path / "history.json")["epoch"]
    assert len(killed) < 2, "the run finished before it could be killed; the test proves nothing"
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, str(tmp_path))]
    assert not alive, f"processes still training in {tmp_path}: {alive}"
    second = run_bundle(args)
    assert "resuming from" in second.stdout + second.stderr
    assert read_json(tmp_path / "history.json")["epoch"] == [1, 2]


def _cmdline_has(proc_dir: Path, text: str) -> bool:
    try:
        return text in (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


@pytest.mark.parametrize("name", DDP)
def test_torchrun_two_processes_with_a_time_limit(tiny_dataset, tmp_path, name):
    """multi_gpu_train.json under torchrun (gloo on CPU): the time limit holds, rank 0 alone writes."""
    import torch

    env = bundle_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
         "run", "--config_file", f"['bundles/{name}/configs/train.json','bundles/{name}/configs/multi_gpu_train.json']",
         "--dataset_dir", str(dataset_of(name, tiny_dataset)), "--output_dir", str(tmp_path), "--max_epochs", "4",
         "--time_limit_s", "0.5",
         *BUNDLE_ROWS[name]["train"], *RUNTIME],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert read_json(tmp_path / "history.json")["epoch"] == [1]  # stopped after the epoch that crossed 0.5 s
    out = proc.stdout + proc.stderr
    assert out.count("time limit:") == 1 and out.count("epoch 1/4") == 1  # rank 0 reports, rank 1 stays quiet
    state = torch.load(tmp_path / "models/model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state)


def test_metadata_valid_offline():
    for name in NAMES:
        proc = run_bundle(["monai.bundle", "verify_metadata", "--meta_file", f"bundles/{name}/configs/metadata.json",
                           "--filepath", "bundles/meta_schema.json"])
        assert "metadata is verified with no error" in (proc.stdout + proc.stderr).lower(), name


def test_a_conflicting_rerun_in_the_same_folder_is_refused(trained_bundle, tiny_phe):
    run = trained_bundle("sich_cls")
    before = (run / "run_config.json").read_bytes(), (run / "models/model.json").read_bytes()
    proc = run_bundle(["medpipe", "train", "sich_cls", "--dataset_dir", str(tiny_phe), "--output_dir", str(run),
                       "--image_size", "64", *RUNTIME], check=False)
    assert proc.returncode == 2 and "already holds a model trained with" in proc.stderr and "Traceback" not in proc.stderr
    assert ((run / "run_config.json").read_bytes(), (run / "models/model.json").read_bytes()) == before


@pytest.fixture(scope="module")
def other_label_kinds(tiny_phe, tmp_path_factory):
    """The tiny dataset relabelled as 3-class and as 3-label data (same images, patients and folds)."""
    import json

    out = {}
    dl = read_json(tiny_phe / "datalist.json")
    for kind in ("multiclass", "multilabel"):
        d = tmp_path_factory.mktemp(kind)
        os.symlink(tiny_phe / "images", d / "images")
        new = json.loads(json.dumps(dl))
        names = ["none", "small", "large"] if kind == "multiclass" else ["phe", "left", "upper"]
        key = "label" if kind == "multiclass" else "labels"
        new["tasks"] = {key: {"kind": kind, "class_names": names}}
        for i, r in enumerate(new["training"] + new.get("test", [])):
            if kind == "multiclass":
                r["label"] = 0 if not r["label"] else 1 + i % 2
            else:
                r["labels"] = [int(r["label"]), i % 2, int(i % 3 == 0)]
        (d / "datalist.json").write_text(json.dumps(new))
        out[kind] = d
    return out


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_classifier_bundle_learns_any_label_kind_from_the_datalist(other_label_kinds, tmp_path, kind):
    """Label kind and names come from the prepared dataset: sich_cls's configs train a 3-class and a 3-label
    model unchanged; evaluation writes that kind's metric keys; inference writes the one CSV schema."""
    ds = other_label_kinds[kind]
    args = ["--dataset_dir", str(ds), "--output_dir", str(tmp_path), "--max_epochs", "1", "--image_size", "32",
            "--batch_size", "8", *RUNTIME]
    if kind == "multilabel":
        args += ["--label_key", "labels"]  # val_f1 is then the macro F1 over the labels
    run_bundle(["medpipe", "train", "sich_cls", *args])
    side = read_json(tmp_path / "models/model.json")["settings"]
    assert side["task"] == kind and len(side["class_names"]) == 3
    run_bundle(["medpipe", "evaluate", "sich_cls", "--ckpt_path", str(tmp_path / "models/model.pt"), *RUNTIME])
    m = read_json(tmp_path / "eval/metrics.json")
    if kind == "multiclass":
        assert {"balanced_accuracy", "kappa", "confusion_matrix", "per_class", "absent_classes"} <= set(m)
        assert len(m["confusion_matrix"]) == 3 and set(m["per_class"]) == {"none", "small", "large"}
    else:
        assert {"auroc_per_class", "auroc_mean", "f1_micro", "f1_macro"} <= set(m)
        assert set(m["auroc_per_class"]) == {"phe", "left", "upper"}
    cols = next(csv.reader(open(tmp_path / "predictions.csv")))
    expect = {"p_none", "p_small", "p_large", "label"} if kind == "multiclass" else \
        {"p_phe", "pred_left", "label_upper"}
    assert expect <= set(cols)


def _readme_snippet(name: str) -> str:
    text = (REPO / "bundles" / name / "docs/README.md").read_text()
    section = text[text.index("## Use the exported model"):]
    section = section[:section.index("\n## ", 5)]
    blocks = section.split("```python\n")[1:]
    assert len(blocks) == 1, f"{name}: one python block expected in 'Use the exported model'"
    return blocks[0].split("```")[0]


@pytest.mark.parametrize("name", NAMES)
def test_export_and_the_readme_lines_that_use_it(trained_bundle, tiny_dataset, tmp_path, name):
    """`medpipe export` to ONNX and TorchScript (parity with the eager model checked), then the README's few lines (onnxruntime / TorchScript / ultralytics) run on an exported model and give
    what the bundle's own inference gives for the same slice."""
    import numpy as np

    run = trained_bundle(name)
    ckpt = str(run / "models/model.pt")
    for fmt in ("onnx", "torchscript"):  # exported next to the checkpoint, parity with eager checked (exit 1 if not)
        proc = run_bundle(["medpipe", "export", name, "--ckpt_path", ckpt, "--format", fmt,
                           *BUNDLE_ROWS[name]["runtime"]])
        assert "OK, tolerance 0.0001" in proc.stdout
    import re

    data = dataset_of(name, tiny_dataset)
    slice_png = data / sorted(r["image"] for r in read_json(data / "datalist.json")["training"])[4]
    code = _readme_snippet(name)
    code = code.replace(f'RUN = "runs/{name}"', f"RUN = {str(run)!r}")
    code = re.sub(r'^SLICE = "[^"\n]+"', lambda _: f"SLICE = {str(slice_png)!r}", code, count=1, flags=re.M)
    assert str(run) in code and str(slice_png) in code, "the snippet's RUN/SLICE lines changed"
    out = tmp_path / "infer"
    # a folder, so that a 2.5D segmenter sees the slice's neighbours as the README snippet reads them
    src = slice_png.parent if name == "sich_seg" else slice_png
    run_bundle(["medpipe", "infer", name, "--ckpt_path", ckpt, "--input", str(src), "--output_dir", str(out),
                *_runtime(name)])
    env: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, f"bundles/{name}/docs/README.md", "exec"), env)
    finally:
        os.chdir(cwd)
    if name == "sich_cls":
        bundle_p = float(next(csv.DictReader(open(out / "predictions.csv")))["probability"])
        assert env["prob"][0, -1] == pytest.approx(bundle_p, abs=1e-4)
        assert np.abs(env["logits_ts"] - env["logits"]).max() <= 1e-4
    elif name == "cxr14_cls":
        row = next(csv.DictReader(open(out / "predictions.csv")))
        names = read_json(run / "models/model.json")["settings"]["class_names"]
        np.testing.assert_allclose(env["prob"][0], [float(row[f"p_{c}"]) for c in names], atol=1e-4)
        assert [int(v) for v in env["positive"]] == [int(row[f"pred_{c}"]) for c in names]
        assert np.abs(env["logits_ts"] - env["logits"]).max() <= 1e-4
    elif name == "cxr_pneumonia":
        row = next(csv.DictReader(open(out / "predictions.csv")))
        assert env["prob"][0, -1] == pytest.approx(float(row["probability"]), abs=1e-4)
        assert int(env["positive"]) == int(row["prediction"])
        assert np.abs(env["logits_ts"] - env["logits"]).max() <= 1e-4
    elif name == "sich_multilabel":  # six sigmoids, each label decided at its stored threshold
        row = next(csv.DictReader(open(out / "predictions.csv")))
        names = read_json(run / "models/model.json")["settings"]["class_names"]
        np.testing.assert_allclose(env["prob"][0], [float(row[f"p_{c}"]) for c in names], atol=1e-4)
        assert [int(v) for v in env["positive"]] == [int(row[f"pred_{c}"]) for c in names]
        assert np.abs(env["logits_ts"] - env["logits"]).max() <= 1e-4
    elif name == "ankle_ct_cls":  # 7-class softmax: every class's probability as the bundle's inference writes it
        row = next(csv.DictReader(open(out / "predictions.csv")))
        names = read_json(run / "models/model.json")["settings"]["class_names"]
        np.testing.assert_allclose(env["prob"][0], [float(row[f"p_{c}"]) for c in names], atol=1e-4)
        assert names[int(env["prob"][0].argmax())] == row["prediction_name"]
        assert np.abs(env["logits_ts"] - env["logits"]).max() <= 1e-4
    elif name == "sich_seg":
        from PIL import Image

        bundle_mask = np.asarray(Image.open(out / "masks" / slice_png.name)) > 0
        assert (env["mask"].astype(bool) == bundle_mask).mean() >= 0.999
    else:
        assert env["boxes"].ndim == 2 and env["boxes"].shape[1] == 4
