"""medpipe prepare phe-sich: pairing, quirks, bad input, accounting, atomicity, re-runs, exports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import phe_sich
from data_prep import phe_sich_layout as L
from medpipe.cli import main as cli_main
from medpipe.errors import DataError, UserError
from tests.conftest import REPO, make_png_dataset, tree_digest, voc_xml


def run(src, out, **kw):
    workers = kw.pop("workers", 1)
    return phe_sich.prepare(src, out, phe_sich.PrepareOptions(**kw), workers=workers, progress=None)


def load(out):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


# ---------------------------------------------------------------------------------------- clean data


@pytest.mark.parametrize("workers", [1, 2])
def test_clean_dataset_records_labels_and_accounting(png_dataset, tmp_path, workers):
    src, truth = png_dataset
    out = tmp_path / "out"
    rep = run(src, out, folds=2, workers=workers)
    dl, rep_json = load(out)
    assert rep_json["records"] == len(truth) == len(dl["training"])
    for r in dl["training"]:
        assert r["label"] == truth[(int(r["patient"]), r["slice"])]
        assert r["mask_label"] == r["label"]
        assert (out / r["image"]).is_file() and (out / r["mask"]).is_file()
        assert r["fold"] in (0, 1)
        assert r["boxes"] == ([[10.0, 8.0, 19.0, 15.0]] if r["label"] else [])
    acc = rep["accounting"]
    assert acc["adds_up"] and acc["files_seen"] == 3 * len(truth) == acc["files_in_records"]
    assert rep["anomalies"] == [] and rep["skipped"] == []
    assert rep["agreement"]["agreement"] == 1.0


def test_datalist_readable_by_monai(png_dataset, tmp_path):
    from monai.data import load_decathlon_datalist

    src, truth = png_dataset
    out = tmp_path / "out"
    run(src, out, folds=2)
    items = load_decathlon_datalist(str(out / "datalist.json"), is_segmentation=False, data_list_key="training",
                                    base_dir=str(out))
    assert len(items) == len(truth)
    assert all(os.path.isfile(i["image"]) for i in items)


def test_patient_level_folds_and_test(tmp_path):
    src = tmp_path / "src"
    make_png_dataset(src, {p: [p % 2, 0, 1 - p % 2] for p in range(1, 21)})
    out = tmp_path / "out"
    rep = run(src, out, folds=4, test_fraction=0.2, seed=5)
    dl, _ = load(out)
    fold_of = {}
    for r in dl["training"]:
        assert fold_of.setdefault(r["patient"], r["fold"]) == r["fold"]
    test_patients = {r["patient"] for r in dl["test"]}
    assert test_patients and not test_patients & set(fold_of)
    assert sorted(test_patients) == rep["test_patients"]
    assert sum(f["patients"] for f in rep["folds"]) + len(test_patients) == 20
    # csv mirrors the datalist
    lines = (out / "labels.csv").read_text().splitlines()
    assert lines[0] == "image,label,patient,slice,fold" and len(lines) == 1 + rep["records"]
    # deterministic per seed, different across seeds
    run(src, tmp_path / "again", folds=4, test_fraction=0.2, seed=5)
    run(src, tmp_path / "other", folds=4, test_fraction=0.2, seed=6)
    again = json.loads((tmp_path / "again/datalist.json").read_text())
    other = json.loads((tmp_path / "other/datalist.json").read_text())
    assert [r["fold"] for r in again["training"]] == [r["fold"] for r in dl["training"]]
    assert {r["patient"]: r["fold"] for r in other["training"]} != fold_of


def test_yolo_export(png_dataset, tmp_path):
    src, truth = png_dataset
    out = tmp_path / "out"
    run(src, out, folds=2, val_fold=1)
    dl, rep = load(out)
    yaml_text = (out / "yolo/data.yaml").read_text()
    assert f"path: {out.resolve() / 'yolo'}" in yaml_text and "0: phe" in yaml_text
    for r in dl["training"]:
        split = "val" if r["fold"] == 1 else "train"
        name = Path(r["image"]).name
        img = out / "yolo/images" / split / name
        lbl = (out / "yolo/labels" / split / (Path(name).stem + ".txt")).read_text()
        assert img.is_file()
        if r["label"]:
            cls, xc, yc, w, h = lbl.split()
            assert cls == "0"
            assert np.allclose([float(xc), float(yc), float(w), float(h)],
                               [14.5 / 32, 11.5 / 32, 9 / 32, 7 / 32], atol=1e-5)
        else:
            assert lbl == ""  # negatives get an empty label file
    assert rep["yolo"]["images"]["val"] == sum(r["fold"] == 1 for r in dl["training"])


def test_images_are_linked_not_copied(png_dataset, tmp_path):
    src, _ = png_dataset
    out = tmp_path / "out"
    rep = run(src, out, folds=2)
    assert rep["link_methods"].get("hardlink", 0) == 2 * rep["records"]
    first = json.loads((out / "datalist.json").read_text())["training"][0]
    assert os.stat(out / first["image"]).st_ino == os.stat(src / first["source"]["image"]).st_ino


# ---------------------------------------------------------------------------------------- quirks


def test_real_quirks_reproduced(tmp_path):
    src = tmp_path / "src"
    make_png_dataset(src, {13: [0, 1, 0], 25: [1, 0], 71: [0, 0, 1, 0, 0, 0], 2: [0, 1, 0]})
    ann13 = src / L.slice_dir("png", "annotation", 13)
    for x in sorted(ann13.glob("*.xml")):  # patient 13: 3-digit XML names
        x.rename(ann13 / x.name[1:])
    for i, x in enumerate(sorted((src / L.slice_dir("png", "annotation", 25)).glob("*.xml"))):
        x.write_text(voc_xml(f"{i}.png", (10, 8, 19, 15) if i == 0 else None))  # patient 25: wrong <filename>
    for kind in ("image", "mask"):  # 0071_05: XML without image
        (src / L.slice_dir("png", kind, 71) / "0071_05.png").unlink()
    before = tree_digest(src)
    out = tmp_path / "out"
    rep = run(src, out, folds=2)
    kinds = rep["anomaly_counts"]
    assert kinds == {"xml_name_not_4digit": 3, "xml_filename_mismatch": 2}
    dl, _ = load(out)
    p13 = [r for r in dl["training"] if r["patient"] == "0013"]
    assert [r["label"] for r in p13] == [0, 1, 0] and all(r["source"]["annotation"].endswith(f"013_{r['slice']:02d}.xml") for r in p13)
    assert [r["label"] for r in dl["training"] if r["patient"] == "0025"] == [1, 0]
    assert rep["skipped"] == [{"path": "SubdatasetC_PNG/annotation/annotation71/0071_05.xml",
                               "reason": "no image for slice 0071_05 (expected SubdatasetC_PNG/set/image71/0071_05.png)"}]
    assert rep["accounting"]["adds_up"] and rep["records"] == 3 + 2 + 5 + 3
    assert tree_digest(src) == before  # the source is never written


def test_jpg_subset_png_encoded_detected_by_content(tmp_path):
    src = tmp_path / "src"
    truth = make_png_dataset(src, subset="jpg")
    rep = run(src / "SubdatasetB_JPG", tmp_path / "out", folds=2)  # --src may be one subset folder
    assert rep["source"]["subset_used"] == "SubdatasetB_JPG"
    assert rep["records"] == len(truth)
    assert rep["anomaly_counts"] == {"extension_mismatch": len(truth)}
    dl, _ = load(tmp_path / "out")
    assert all(r["image"].endswith(".png") and r["mask"].endswith(".png") for r in dl["training"])


def test_subset_preference_and_other_subsets_accounted(tmp_path):
    src = tmp_path / "src"
    make_png_dataset(src, subset="png")
    make_png_dataset(src, subset="jpg")
    rep = run(src, tmp_path / "out", folds=2)
    assert rep["source"]["subsets_found"] == ["SubdatasetC_PNG", "SubdatasetB_JPG"]
    assert rep["source"]["subset_used"] == "SubdatasetC_PNG"
    assert rep["skipped"][0]["path"] == "SubdatasetB_JPG" and rep["skipped"][0]["files"] == rep["records"] * 3
    assert rep["accounting"]["adds_up"]
    rep2 = run(src, tmp_path / "out2", folds=2, subset="jpg")
    assert rep2["source"]["subset_used"] == "SubdatasetB_JPG"


# ---------------------------------------------------------------------------------------- bad input


def _corrupt(src, case):
    img = src / L.slice_dir("png", "image", 1) / "0001_01.png"
    mask = src / L.slice_dir("png", "mask", 1) / "0001_01.png"
    xml = src / L.slice_dir("png", "annotation", 1) / "0001_01.xml"
    if case == "truncated_image":
        img.write_bytes(img.read_bytes()[:40])
        return img, "skipped", "truncated"
    if case == "empty_image":
        img.write_bytes(b"")
        return img, "skipped", "empty file"
    if case == "malformed_xml":
        xml.write_text("<annotation><object>")
        return xml, "malformed_xml", "not well-formed"
    if case == "box_outside":
        xml.write_text(voc_xml("0001_01.jpg", (10, 8, 40, 15)))
        return xml, "box_outside_image", "clipped"
    if case == "box_fully_outside":
        xml.write_text(voc_xml("0001_01.jpg", (50, 50, 60, 60)))
        return xml, "box_outside_image", "dropped"
    if case == "mask_size":
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(mask)
        return mask, "skipped", "mask is 16x16 but image is 32x32"
    if case == "mask_not_binary":
        arr = np.zeros((32, 32), np.uint8)
        arr[8:16, 10:20] = 200
        arr[0, 0] = 3
        Image.fromarray(arr).save(mask)
        return mask, "mask_not_binary", "value > 127"
    if case == "missing_xml":
        xml.unlink()
        return img, "missing_annotation", "derived from the mask"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["truncated_image", "empty_image", "malformed_xml", "box_outside",
                                  "box_fully_outside", "mask_size", "mask_not_binary", "missing_xml"])
def test_bad_files_reported_not_crashed(png_dataset, tmp_path, case):
    src, truth = png_dataset
    path, kind, text = _corrupt(src, case)
    rel = str(path.relative_to(src))
    rep = run(src, tmp_path / "out", folds=2)
    assert rep["accounting"]["adds_up"]
    if kind == "skipped":
        entry = next(s for s in rep["skipped"] if s["path"] == rel)
        assert text in entry["reason"]
        assert rep["records"] == len(truth) - 1
    else:
        entry = next(a for a in rep["anomalies"] if a["path"] == rel and a["kind"] == kind)
        assert text in entry["action"] or text in json.dumps(rep["skipped"])
        assert rep["records"] == len(truth)
    dl, _ = load(tmp_path / "out")
    rec = next((r for r in dl["training"] if r["patient"] == "0001" and r["slice"] == 1), None)
    if case == "box_outside":
        assert rec["boxes"] == [[10.0, 8.0, 32.0, 15.0]]
    if case in ("box_fully_outside",):
        assert rec["boxes"] == [] and rec["label"] == 0
    if case in ("malformed_xml", "missing_xml"):
        assert rec["label_source"] == "mask" and rec["boxes"] == [[10.0, 8.0, 19.0, 15.0]]
    # --strict: any anomaly is an error and nothing is written
    with pytest.raises(DataError, match="--strict") as e:
        run(src, tmp_path / "strict", folds=2, strict=True)
    assert not (tmp_path / "strict").exists()
    assert rel in str(e.value) or "first:" in str(e.value)


@pytest.mark.parametrize("case,match", [
    ("missing", "no such folder"),
    ("file", "is a file"),
    ("empty", "no PHE-SICH-CT-IDS data found"),
    ("wrong", "no PHE-SICH-CT-IDS data found"),
    ("out_inside", "inside --src"),
    ("no_slices", "no slices found"),
])
def test_bad_src_messages(tmp_path, case, match):
    src, out = tmp_path / "src", tmp_path / "out"
    if case == "file":
        src.write_text("x")
    elif case in ("empty", "wrong", "out_inside", "no_slices"):
        src.mkdir()
        if case == "wrong":
            (src / "images").mkdir()
            (src / "images/a.png").write_bytes(b"x")
        if case == "out_inside":
            make_png_dataset(src)
            out = src / "prepared"
        if case == "no_slices":
            (src / "SubdatasetC_PNG/set").mkdir(parents=True)
            (src / "SubdatasetC_PNG/set/readme.txt").write_text("x")
    with pytest.raises((DataError, UserError), match=match) as e:
        run(src, out)
    assert str(src) in str(e.value)
    assert not out.exists()


def test_cli_errors_are_one_paragraph_without_traceback(tmp_path, capsys):
    rc = cli_main(["prepare", "phe-sich", "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "no such folder" in err and "Traceback" not in err and str(tmp_path / "nowhere") in err


def test_cli_strict_exit_code(png_dataset, tmp_path, capsys):
    src, _ = png_dataset
    _corrupt(src, "malformed_xml")
    rc = cli_main(["prepare", "phe-sich", "--src", str(src), "--out", str(tmp_path / "o"), "--folds", "2", "--strict"])
    assert rc == 2 and "malformed_xml" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- re-runs, atomicity


def test_unchanged_rerun_does_nothing_and_change_rebuilds(png_dataset, tmp_path):
    src, _ = png_dataset
    out = tmp_path / "out"
    run(src, out, folds=2)
    stamp = (out / "datalist.json").stat().st_mtime_ns
    rep = run(src, out, folds=2)
    assert rep.get("up_to_date") is True
    assert (out / "datalist.json").stat().st_mtime_ns == stamp
    rep = run(src, out, folds=2, seed=99)  # other options -> rebuilt
    assert not rep.get("up_to_date")
    xml = src / L.slice_dir("png", "annotation", 2) / "0002_00.xml"
    xml.write_text(voc_xml("0002_00.jpg", (1, 1, 5, 5)))  # changed source -> rebuilt
    rep = run(src, out, folds=2, seed=99)
    assert not rep.get("up_to_date") and rep["positives"] == 7


def test_failure_midway_leaves_previous_output_untouched(png_dataset, tmp_path, monkeypatch):
    src, _ = png_dataset
    out = tmp_path / "out"
    run(src, out, folds=2)
    before = tree_digest(out)

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(phe_sich, "write_labels_csv", boom)
    with pytest.raises(OSError, match="simulated"):
        run(src, out, folds=2, seed=3)
    assert tree_digest(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_killed_midway_leaves_no_half_written_output(png_dataset, tmp_path):
    """SIGKILL a real `prepare` process while it writes: --out never appears half-written."""
    src, _ = png_dataset
    out = tmp_path / "out"
    script = (
        "import time, sys\n"
        "from data_prep import phe_sich\n"
        "orig = phe_sich.write_labels_csv\n"
        "def slow(*a, **k):\n"
        "    orig(*a, **k); print('WRITING', flush=True); time.sleep(60)\n"
        "phe_sich.write_labels_csv = slow\n"
        f"phe_sich.prepare({str(src)!r}, {str(out)!r}, phe_sich.PrepareOptions(folds=2), workers=1, progress=None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
        assert temps and (temps[0] / "labels.csv").exists()  # it really was midway
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    rep = run(src, out, folds=2)  # the next run cleans the leftovers and completes
    assert rep["records"] > 0 and (out / "datalist.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]


# ---------------------------------------------------------------------------------------- the real sample


@pytest.mark.realdata
def test_real_sample(real_phe, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in (real_phe / "SubdatasetC_PNG/annotation/annotation13").iterdir()}
    rep = run(real_phe, tmp_path / "out", workers=2)
    assert rep["records"] == 1796 and rep["patients"] == 60
    assert rep["positives"] == 346 and rep["mask_nonempty"] == 335
    assert rep["inputs"] == {"annotation": 1797, "image": 1796, "mask": 1796, "total": 5389}
    assert rep["accounting"] == {"files_seen": 5389, "files_in_records": 5388, "files_skipped": 1, "adds_up": True}
    assert rep["anomaly_counts"] == {"xml_name_not_4digit": 32, "xml_filename_mismatch": 25}
    assert [s["path"] for s in rep["skipped"]] == ["SubdatasetC_PNG/annotation/annotation71/0071_05.xml"]
    assert sum(f["patients"] for f in rep["folds"]) == 60 and all(f["patients"] == 12 for f in rep["folds"])
    ag = rep["agreement"]
    assert (ag["box_and_mask"], ag["box_no_mask"], ag["mask_no_box"], ag["neither"]) == (333, 13, 2, 1448)
    dl, _ = load(tmp_path / "out")
    r = next(r for r in dl["training"] if r["patient"] == "0004" and r["slice"] == 15)
    assert r["boxes"] == [[164.0, 114.0, 285.0, 184.0]] and r["label"] == 1
    assert {p: p.stat().st_mtime_ns for p in (real_phe / "SubdatasetC_PNG/annotation/annotation13").iterdir()} == before
    t0 = time.perf_counter()
    assert run(real_phe, tmp_path / "out", workers=2).get("up_to_date")
    assert time.perf_counter() - t0 < 5  # generous: the benchmark measures the real figure
