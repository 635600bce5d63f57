"""medpipe.detection.data: class names, label discovery, and the per-fold data.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from medpipe.detection import data as D
from medpipe.errors import DataError
from tests.bundles.conftest import tiny_dataset, tiny_phe  # noqa: F401 - session fixtures: synth -> prepare (3 folds)


def _datalist(ds):
    return json.loads((ds / "datalist.json").read_text())


def _copy_with_names(src: Path, dst: Path, names) -> Path:
    """A copy of a prepared dataset whose yolo/data.yaml names ``names``."""
    shutil.copytree(src, dst)
    doc = yaml.safe_load((dst / "yolo/data.yaml").read_text())
    doc["names"] = names
    doc.pop("nc", None)
    (dst / "yolo/data.yaml").write_text(yaml.safe_dump(doc))
    return dst


@pytest.mark.parametrize("fold", [0, 1])
def test_fold_data_yaml_lists_the_fold(tiny_phe, tmp_path, fold):  # noqa: F811
    path = D.fold_data_yaml(tiny_phe, fold, tmp_path / "data")
    cfg = yaml.safe_load(open(path))
    assert D.class_names(tiny_phe) == ["phe"]
    assert cfg["nc"] == 1 and cfg["names"] == {0: "phe"}
    assert cfg["path"] == str(tmp_path / "data") and "test" not in cfg
    recs = _datalist(tiny_phe)["training"]
    expected = {"train": [r for r in recs if r["fold"] != fold], "val": [r for r in recs if r["fold"] == fold]}
    for split, want in expected.items():
        listed = open(cfg[split]).read().split()
        assert cfg[split].startswith("/") and all(p.startswith(str(tiny_phe / "yolo/images")) for p in listed)
        assert [p.rsplit("/", 1)[1] for p in listed] == [r["image"].rsplit("/", 1)[1] for r in want]
        assert all("/yolo/images/" in p for p in listed)
    # fold 1 is not prepare's YOLO val fold (0): its val list draws from yolo/images/train
    val = open(cfg["val"]).read().split()
    assert any("/images/train/" in p for p in val) == (fold != 0)


def test_labels_found_the_ultralytics_way(tiny_phe, tmp_path):  # noqa: F811
    from medpipe.detection.env import prepare_ultralytics_env

    prepare_ultralytics_env()
    from ultralytics.data.utils import img2label_paths

    cfg = yaml.safe_load(open(D.fold_data_yaml(tiny_phe, 1, tmp_path)))
    recs = {r["image"].rsplit("/", 1)[1]: r for r in _datalist(tiny_phe)["training"]}
    for split in ("train", "val"):
        images = open(cfg[split]).read().split()
        labels = img2label_paths(images)
        assert labels == [str(D.label_path(p)) for p in images]
        for img, lab in zip(images, labels):
            lines = [x for x in open(lab).read().splitlines() if x.strip()]
            assert len(lines) == len(recs[img.rsplit("/", 1)[1]]["boxes"])


def test_quoting_survives_ultralytics_loader(tiny_phe, tmp_path):  # noqa: F811
    """A '#' and ': ' in the folders and class names survive the round trip through ultralytics' own loader."""
    from medpipe.detection.env import prepare_ultralytics_env

    prepare_ultralytics_env()
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import YAML

    names = ["phe: core", "blood #2", "- 'odd' \"one\""]
    ds = _copy_with_names(tiny_phe, tmp_path / "data #1: copy", names)
    assert D.class_names(ds) == names
    out = tmp_path / "run #2: a, b" / "data"
    path = D.fold_data_yaml(ds, 1, out)
    loaded = YAML.load(path)
    assert loaded["path"] == str(out) and loaded["train"] == str(out / "train.txt")
    assert loaded["nc"] == 3 and loaded["names"] == dict(enumerate(names))
    assert yaml.safe_load(Path(path).read_text())["names"] == dict(enumerate(names))
    assert open(loaded["val"]).read().splitlines()[0].startswith(str(ds / "yolo/images"))
    checked = check_det_dataset(path)  # what ultralytics' trainer and validator call
    assert checked["names"] == dict(enumerate(names)) and checked["nc"] == 3
    assert Path(checked["val"]) == (out / "val.txt").resolve()


@pytest.mark.parametrize("text,names", [
    ("names:\n  0: phe\n", ["phe"]),
    ("nc: 2\nnames: [a, b]\n", ["a", "b"]),
    ("names:\n  1: b\n  0: a\n", ["a", "b"]),
    ("names: {'0': x}\n", ["x"]),
])
def test_class_names_forms(tmp_path, text, names):
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo/data.yaml").write_text(text)
    assert D.class_names(tmp_path) == names


@pytest.mark.parametrize("text,match", [
    (None, "not found"),
    ("path: /x\n", "no `names`"),
    ("names: [\n", "not valid YAML"),
    ("names: []\n", "no class names"),
    ("names: {0: a, 2: b}\n", "class ids"),
    ("names: phe\n", "expected a list"),
])
def test_class_names_errors(tmp_path, text, match):
    (tmp_path / "yolo").mkdir()
    if text is not None:
        (tmp_path / "yolo/data.yaml").write_text(text)
    with pytest.raises(DataError, match=match):
        D.class_names(tmp_path)


def test_check_same_classes(tmp_path):
    p = tmp_path / "data.yaml"
    p.write_text("names:\n  0: phe\n")
    assert D.check_same_classes(["phe"], p) == ["phe"]
    with pytest.raises(DataError, match="differ"):
        D.check_same_classes(["phe", "ich"], p)


def test_fold_data_yaml_errors(tiny_phe, tmp_path):  # noqa: F811
    with pytest.raises(DataError, match="fold 7"):
        D.fold_data_yaml(tiny_phe, 7, tmp_path / "a")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_phe, broken)
    victim = next(p for p in (broken / "yolo/labels/val").glob("*.txt") if p.read_text().strip())
    victim.write_text(victim.read_text().replace("0 ", "3 ", 1))  # a class id the data.yaml does not name
    with pytest.raises(DataError, match="class id 3"):
        D.fold_data_yaml(broken, 0, tmp_path / "b")
    victim.unlink()
    with pytest.raises(DataError, match="label file missing"):
        D.fold_data_yaml(broken, 0, tmp_path / "b")
    shutil.rmtree(broken / "yolo")
    with pytest.raises(DataError, match="re-run prepare"):
        D.fold_data_yaml(broken, 0, tmp_path / "c")


def test_label_path_rule():
    assert str(D.label_path("/d/images/x/yolo/images/val/0001_02.png")) == "/d/images/x/yolo/labels/val/0001_02.txt"
    with pytest.raises(DataError):
        D.label_path("/d/pics/0001_02.png")
