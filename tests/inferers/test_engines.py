"""Inference engines (medpipe.inferers.engines): TorchScript and ONNX Runtime give the eager network's
outputs, ``medpipe infer --engine onnx`` writes eager's predictions, and a stale export is refused.

The checkpoints are tiny and untrained (random weights, as a training run would save them, with their
``model.json``): parity does not depend on training, and building them takes a second where training
would take a minute.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medpipe.errors import UserError
from medpipe.inferers.engines import ENGINES, OnnxModule, build_engine, engine_path, max_abs_diff

SPEC = {"channels": 1, "window": [40, 80], "slice_pattern": r"^(?P<patient>\d{1,4})_(?P<slice>\d{1,3})$",
        "patient_format": "{:04d}"}


def _classifier():
    from medpipe.networks.classification import build_classifier

    return build_classifier("resnet18", 1, 2)


def _segmenter():
    # model.pt holds the inference network's weights (training saves it without the deep-supervision heads)
    from medpipe.networks.segmentation import build_segmenter

    return build_segmenter("dynunet", 1, 2, [32, 32], deep_supervision=False)


#: bundle -> (settings of a tiny checkpoint, how to build the network it saves)
RUNS = {
    "sich_cls": ({"task": "binary", "class_names": ["no_phe", "phe"], "label_key": "label", "in_channels": 1,
                  "input_spec": SPEC, "network_name": "resnet18", "image_size": 32, "normalization": "imagenet",
                  "fold": 0},
                 _classifier),
    "sich_seg": ({"task": "segmentation", "class_names": ["background", "phe"], "label_key": "mask", "in_channels": 1,
                  "input_spec": SPEC, "network_name": "dynunet", "image_size": 64, "patch_size": [32, 32],
                  "deep_supervision": True, "fold": 0,
                  "intensity_stats": {"mean": 90.0, "std": 50.0, "p_low": 5.0, "p_high": 250.0}},
                 _segmenter),
}


def _make_run(root: Path, bundle: str, seed: int) -> Path:
    from medpipe.bundle.checkpoint import write_model_settings

    settings, build = RUNS[bundle]
    torch.manual_seed(seed)
    (root / "models").mkdir(parents=True)
    net = build()
    for m in net.modules():  # untrained BatchNorm statistics would make every input look alike
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) and m.running_mean is not None:
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), root / "models/model.pt")
    write_model_settings(root / "models", bundle, settings, network={"name": settings["network_name"]})
    return root / "models/model.pt"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{bundle: checkpoint}``: one tiny sich_cls and one tiny sich_seg run, shared by the tests here."""
    root = tmp_path_factory.mktemp("engines")
    return {b: _make_run(root / b, b, seed=1) for b in RUNS}


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    """A folder of five 64-px PNG slices named as PHE-SICH names them."""
    from PIL import Image

    d = tmp_path_factory.mktemp("slices")
    rng = np.random.default_rng(0)
    for i in range(5):
        img = rng.integers(0, 90, (64, 64), dtype=np.uint8)
        img[10 + 4 * i:30 + 4 * i, 20:40] = 200  # a bright blob, so the outputs differ between slices
        Image.fromarray(img).save(d / f"7_{i}.png")
    return d


def _eager(bundle: str, ckpt: Path) -> torch.nn.Module:
    from medpipe.bundle.export import inference_network

    return inference_network(bundle, str(ckpt))[0]


@pytest.mark.parametrize("engine", ["torchscript", "onnx"])
@pytest.mark.parametrize("bundle", list(RUNS))
def test_engine_reproduces_eager(runs, bundle, engine):
    """Exported next to the checkpoint on first use; then the same logits as eager (<= 1e-4) on a batch
    of another size than the export's, and for the segmenter through the sliding window on whole slices."""
    ckpt = runs[bundle]
    path = engine_path(ckpt, engine)
    assert not path.exists()
    module = build_engine(engine, _eager(bundle, ckpt), str(ckpt))
    assert path.is_file() and path.parent == ckpt.parent
    assert path.suffix == {"torchscript": ".ts", "onnx": ".onnx"}[engine]
    assert isinstance(module, OnnxModule if engine == "onnx" else torch.jit.ScriptModule)
    ref = _eager(bundle, ckpt)
    shape = [1, 1, 32, 32]
    assert max_abs_diff(ref, module, shape, batch=3, seed=7) <= 1e-4
    x = torch.randn(3, *shape[1:], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = module(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.shape == ((3, 2) if bundle == "sich_cls" else (3, 2, 32, 32))
    if bundle == "sich_seg":  # the bundle's inferer feeds 32-px windows (batch 4, the last one smaller) of 64x80 slices
        from medpipe.inferers.sliding_window import SlidingWindowTTAInferer

        inferer = SlidingWindowTTAInferer(roi_size=[32, 32], sw_batch_size=4, mirror_axes=[3])
        img = torch.rand(2, 1, 64, 80, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            a, b = inferer(img, ref), inferer(img, module)
        assert a.shape == b.shape == (2, 2, 64, 80)
        assert float((a - b).abs().max()) <= 1e-4


def test_eager_is_the_network_itself(runs):
    net = _eager("sich_cls", runs["sich_cls"])
    assert build_engine("eager", net, str(runs["sich_cls"])) is net


def test_unknown_engine_is_refused(runs):
    with pytest.raises(UserError, match=r"--engine tensorrt: choose eager, torchscript, onnx"):
        build_engine("tensorrt", _eager("sich_cls", runs["sich_cls"]), str(runs["sich_cls"]))


@pytest.mark.parametrize("engine", ["torchscript", "onnx"])
def test_export_of_another_checkpoint_is_refused_and_left_alone(runs, tmp_path, engine):
    """A run trained again after its export: the old file does not match model.pt any more; it is refused
    with the command that re-exports it, and neither used nor overwritten."""
    first = runs["sich_cls"]
    build_engine(engine, _eager("sich_cls", first), str(first))  # exported (or reused) beside the first run
    again = _make_run(tmp_path / "again", "sich_cls", seed=2)
    stale = engine_path(again, engine)
    shutil.copy(engine_path(first, engine), stale)
    before = (stale.read_bytes(), stale.stat().st_mtime_ns)
    with pytest.raises(UserError) as err:
        build_engine(engine, _eager("sich_cls", again), str(again))
    msg = str(err.value)
    assert f"medpipe export sich_cls --ckpt_path {again} --format {engine}" in msg and "max abs diff" in msg
    assert (stale.read_bytes(), stale.stat().st_mtime_ns) == before


def test_missing_export_in_a_read_only_folder_names_the_way_out(runs, tmp_path, monkeypatch):
    import medpipe.inferers.engines as E

    ckpt = _make_run(tmp_path / "ro", "sich_cls", seed=3)
    real = os.access
    monkeypatch.setattr(E.os, "access", lambda p, mode: False if Path(p) == ckpt.parent else real(p, mode))
    with pytest.raises(UserError, match=r"model\.onnx does not exist and cannot be written .* Copy the checkpoint"):
        build_engine("onnx", _eager("sich_cls", ckpt), str(ckpt))
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["model.json", "model.pt"]


def _predictions(path: Path) -> list[dict]:
    with open(path) as f:
        return sorted(csv.DictReader(f), key=lambda r: r["image"])


@pytest.mark.parametrize("bundle", list(RUNS))
def test_medpipe_infer_engine_onnx_writes_eagers_predictions(runs, slices, tmp_path, bundle, capsys):
    """End to end: `medpipe infer BUNDLE --engine onnx` and the default (eager) write the same predictions.csv
    (probabilities within 1e-4, the same decisions; lesion areas within 2 pixels), and the printed
    monai.bundle command carries --engine."""
    from medpipe.cli import main

    ckpt = runs[bundle]
    common = ["infer", bundle, "--ckpt_path", str(ckpt), "--input", str(slices), "--device", "cpu",
              "--num_workers", "0"]
    assert main(common + ["--output_dir", str(tmp_path / "eager")]) == 0
    assert main(common + ["--output_dir", str(tmp_path / "onnx"), "--engine", "onnx"]) == 0
    assert "--engine onnx" in capsys.readouterr().out
    eager, onnx = _predictions(tmp_path / "eager/predictions.csv"), _predictions(tmp_path / "onnx/predictions.csv")
    assert len(eager) == len(onnx) == 5
    for a, b in zip(eager, onnx):
        assert a.keys() == b.keys()
        for k in a:
            # a lesion area counts pixels: one whose probability sits within ~1e-6 of the decision flips
            tol = 2 if k.endswith("area") else 1e-4
            try:
                assert abs(float(a[k]) - float(b[k])) <= tol, (k, a[k], b[k])
            except ValueError:  # names and paths
                assert a[k] == b[k].replace(str(tmp_path / "onnx"), str(tmp_path / "eager")), (k, a[k], b[k])
    # the slices gave different outputs: the comparison means something
    assert len({r["probability" if bundle == "sich_cls" else "pred_area"] for r in eager}) > 1


def test_cli_engine_choices(capsys):
    from medpipe.cli import main

    with pytest.raises(SystemExit) as e:
        main(["infer", "sich_cls", "--ckpt_path", "m.pt", "--input", "x", "--engine", "tensorrt"])
    assert e.value.code == 2 and "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_ultralytics_bundle_refuses_other_engines(capsys, tmp_path):
    from medpipe.cli import main

    assert main(["infer", "sich_det", "--ckpt_path", str(tmp_path / "m.pt"), "--input", str(tmp_path),
                 "--engine", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "--engine onnx: sich_det runs on the ultralytics engine" in err and "medpipe export sich_det" in err
    assert len(err.strip().splitlines()) == 1


def test_engine_is_a_setting_of_every_monai_bundle_inference():
    """`python -m monai.bundle run --config_file bundles/B/configs/inference.json --engine onnx` is accepted
    (the key exists, default eager, from the shared skeleton) for every MONAI-engine bundle."""
    from medpipe.bundle import BUNDLES
    from medpipe.bundle.overrides import check_keys
    from medpipe.bundle.runner import config_files, raw_config

    for name, spec in BUNDLES.items():
        if spec.engine != "monai":
            continue
        files = config_files(name, "infer")
        raw = raw_config(files)
        check_keys(["engine"], raw, name)
        assert raw["engine"] == "%bundles/common/configs/inference.json#engine", name
    from monai.bundle import ConfigParser

    from tests.conftest import REPO

    common = ConfigParser.load_config_file(str(REPO / "bundles/common/configs/inference.json"))
    assert common["engine"] == "eager" and common["evaluator"]["network"]["engine"] == "@engine"
    assert set(ENGINES) == {"eager", "torchscript", "onnx"}
