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
from data_prep.phe_sich import convert
from data_prep.phe_sich import layout as L
from medpipe.cli import main as cli_main
from medpipe.errors import DataError, UserError
from tests.conftest import REPO, corrupt_png_pixels, make_png_dataset, tree_digest, voc_xml


def run(src, out, **kw):
    workers = kw.pop("workers", 1)
    return phe_sich.prepare(src, out, kw, workers=workers, progress=None)


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


def test_datalist_header_declares_tasks_and_input(png_dataset, tmp_path):
    src, _ = png_dataset
    run(src, tmp_path / "out", folds=2)
    dl, rep = load(tmp_path / "out")
    assert dl["dataset"] == "phe-sich"
    assert dl["tasks"] == {"label": {"kind": "binary", "class_names": ["no_phe", "phe"]},
                           "mask": {"kind": "segmentation", "class_names": ["background", "phe"]},
                           "boxes": {"kind": "detection", "class_names": ["phe"]}}
    assert dl["input"] == {"modality": "CT", "channels": 1, "window": [40.0, 80.0], "orientation": "radiological",
                           "slice_pattern": "^(?P<patient>\\d{1,4})_(?P<slice>\\d{1,3})$", "patient_format": "{:04d}"}
    for key in ("name", "labels", "class_names", "num_folds", "seed", "numTraining", "numTest", "patients", "subset"):
        assert key in dl
    assert dl["labels"] == {"0": "no_phe", "1": "phe"} and dl["class_names"] == ["phe"]
    import re

    m = re.match(dl["input"]["slice_pattern"], "0004_15")  # what inference does with a file name
    assert dl["input"]["patient_format"].format(int(m["patient"])) == "0004" and int(m["slice"]) == 15
    assert rep["tasks"] == dl["tasks"]


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


@pytest.mark.parametrize("link", ["copy", "hardlink", "symlink"])
def test_images_copied_unless_links_are_asked_for(png_dataset, tmp_path, link):
    src, _ = png_dataset
    out = tmp_path / "out"
    before = tree_digest(src)
    rep = run(src, out, folds=2, **({} if link == "copy" else {"link": link}))
    assert rep["link_methods"] == {link: 2 * rep["records"]}
    first = json.loads((out / "datalist.json").read_text())["training"][0]
    img, orig = out / first["image"], src / first["source"]["image"]
    assert img.read_bytes() == orig.read_bytes()
    assert (os.stat(img).st_ino == os.stat(orig).st_ino) == (link != "copy")
    assert img.is_symlink() == (link == "symlink")
    yolo = next((out / "yolo/images").rglob(img.name))
    assert yolo.read_bytes() == orig.read_bytes() and yolo.is_symlink() == (link == "symlink")
    if link == "copy":  # editing the output leaves --src alone
        with open(img, "r+b") as f:
            f.write(b"\0\0\0\0")
        with open(yolo, "r+b") as f:
            f.write(b"\0\0\0\0")
        assert tree_digest(src) == before


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
    assert rep["skipped"] == [{"path": "SubdatasetC_PNG/annotation/annotation71/0071_05.xml", "kind": "no_image",
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
    if case in ("corrupt_pixels", "corrupt_pixels_crc_ok"):
        corrupt_png_pixels(img, fix_crc=case.endswith("crc_ok"))
        return img, "skipped", "cannot be decoded"
    if case == "corrupt_mask":
        corrupt_png_pixels(mask)
        return mask, "skipped", "cannot be decoded"
    if case == "swapped_corners":
        xml.write_text(voc_xml("0001_01.jpg", (19, 15, 10, 8)))
        return xml, "box_corners_swapped", "reordered to [10.0, 8.0, 19.0, 15.0]"
    if case == "mask_0_1":
        arr = np.zeros((32, 32), np.uint8)
        arr[8:16, 10:20] = 1
        Image.fromarray(arr).save(mask)
        return mask, "mask_values_not_0_255", "values {0, 1}: foreground = 1"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["truncated_image", "empty_image", "malformed_xml", "box_outside",
                                  "box_fully_outside", "mask_size", "mask_not_binary", "missing_xml",
                                  "corrupt_pixels", "corrupt_pixels_crc_ok", "corrupt_mask", "swapped_corners",
                                  "mask_0_1"])
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
        if "corrupt" in case:  # the damaged file is named, and its slice partners are skipped with it
            assert rel in entry["reason"]
            assert len([s for s in rep["skipped"] if "0001_01" in s["path"]]) == 3
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
    if case == "swapped_corners":
        assert rec["boxes"] == [[10.0, 8.0, 19.0, 15.0]] and rec["label"] == 1
        lbl = next((tmp_path / "out/yolo/labels").rglob("0001_01.txt")).read_text().split()
        assert all(float(v) > 0 for v in lbl[1:])  # no negative YOLO sizes
    if case == "mask_0_1":
        assert rec["mask_label"] == 1
        stored = np.asarray(Image.open(tmp_path / "out" / rec["mask"]))
        assert set(np.unique(stored)) == {0, 255} and (stored == 255).sum() == 80
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
    ("no_slices", "no usable PHE-SICH-CT-IDS files found"),
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


def test_yolo_yaml_survives_odd_paths_and_class_names(png_dataset, tmp_path):
    import yaml

    src, _ = png_dataset
    out = tmp_path / "run #1: final" / "out"
    run(src, out, folds=2, class_name="oedema: PHE # v2")
    data = yaml.safe_load((out / "yolo/data.yaml").read_text())
    assert data["path"] == str(out.resolve() / "yolo") and data["nc"] == 1
    assert data["names"] == {0: "oedema: PHE # v2"}
    dl, _ = load(out)
    assert dl["tasks"]["boxes"]["class_names"] == ["oedema: PHE # v2"]
    assert dl["labels"] == {"0": "no_oedema: PHE # v2", "1": "oedema: PHE # v2"}


@pytest.mark.parametrize("opts, match, not_match", [
    ({"folds": 0}, "--folds 0: must be >= 2", "val-fold"),
    ({"folds": 2, "val_fold": 2}, r"--val-fold 2: must be in 0..1 \(--folds 2\)", None),
    ({"test_fraction": 1.0}, "--test-fraction 1.0: must be >= 0 and < 1", None),
    ({"subset": "dicom"}, "--subset dicom: expected one of auto, png, jpg, nifti", None),
    ({"subset": "nifti"}, "--subset nifti: not found", None),
])
def test_option_problems_named_in_order(png_dataset, tmp_path, opts, match, not_match):
    src, _ = png_dataset
    with pytest.raises(UserError, match=match) as e:
        run(src, tmp_path / "out", **opts)
    if not_match:
        assert not_match not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_damaged_labels_csv_is_rebuilt(png_dataset, tmp_path):
    src, _ = png_dataset
    out = tmp_path / "out"
    run(src, out, folds=2)
    (out / "labels.csv").unlink()
    rep = run(src, out, folds=2)
    assert not rep.get("up_to_date") and "labels.csv is missing" in rep["rebuilt_because"]
    assert (out / "labels.csv").is_file() and run(src, out, folds=2).get("up_to_date")
    assert "labels.csv is missing" in (out / "prepare_report.md").read_text()


@pytest.mark.parametrize("argv, match", [
    (["prepare", "phe-sich", "--folds", "0"], "argument --folds: 0: must be >= 2"),
    (["prepare", "phe-sich", "--test-fraction", "2"], "argument --test-fraction: 2.0: must be >= 0 and < 1"),
    (["prepare", "phe_sich"], "did you mean 'phe-sich'"),
    (["synth", "phe-sich", "--size", "8"], "argument --size: 8: must be >= 64 and <= 2048"),
    (["synth", "phe-sich", "--patients", "1"], "argument --patients: 1: must be >= 2"),
    (["synth", "phe-sich", "--subsets", "png,bmp"], "argument --subsets: 'png,bmp': expected a comma-separated selection"),
])
def test_cli_refuses_bad_options_with_exit_2(tmp_path, capsys, argv, match):
    args = argv + (["--src", str(tmp_path)] if argv[0] == "prepare" else []) + ["--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        cli_main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and match in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_synth_then_prepare_with_too_few_patients_says_what_to_do(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert cli_main(["synth", "phe-sich", "--out", str(raw), "--patients", "3", "--size", "64",
                     "--subsets", "png", "--slices", "6,6"]) == 0
    out = capsys.readouterr().out
    assert "3 patients are fewer than the 5 folds" in out and "--folds 3 or fewer" in out
    assert "18 slices" in out and "(plus medpipe's marker file)" in out
    assert cli_main(["prepare", "phe-sich", "--src", str(raw), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "--folds 5: 3 patients found" in err and "use --folds 3 or fewer" in err and "Traceback" not in err
    assert cli_main(["prepare", "phe-sich", "--src", str(raw), "--out", str(tmp_path / "p"), "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "files in --src: 53 = 52 used + 1 skipped:" in out
    assert "not counted: .medpipe-synth.json (medpipe synth marker, not a dataset file)" in out


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

    monkeypatch.setattr(convert, "write_labels_csv", boom)
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
        "from data_prep.phe_sich import convert\n"
        "orig = convert.write_labels_csv\n"
        "def slow(*a, **k):\n"
        "    orig(*a, **k); print('WRITING', flush=True); time.sleep(60)\n"
        "convert.write_labels_csv = slow\n"
        f"phe_sich.prepare({str(src)!r}, {str(out)!r}, {{'folds': 2}}, workers=1, progress=None)\n"
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
    rep = run(real_phe, tmp_path / "out", workers=2, link="hardlink")  # counts are the point here; copies cost time
    assert rep["records"] == 1796 and rep["patients"] == 60
    assert rep["positives"] == 346 and rep["mask_nonempty"] == 335
    assert rep["inputs"] == {"annotation": 1797, "image": 1796, "mask": 1796, "total": 5389}
    assert rep["accounting"] == {"files_seen": 5389, "files_in_records": 5388, "files_skipped": 1, "adds_up": True,
                                 "ignored_medpipe_files": 0}
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
    assert run(real_phe, tmp_path / "out", workers=2, link="hardlink").get("up_to_date")
    assert time.perf_counter() - t0 < 5  # generous: the benchmark measures the real figure


def test_records_link_their_stack_neighbours(png_dataset, tmp_path):
    """2.5D input: each slice names the images of the slices just above and below in its patient's stack."""
    src, _ = png_dataset
    run(src, tmp_path / "out", folds=2)
    dl, _ = load(tmp_path / "out")
    by = {(r["patient"], r["slice"]): r for r in dl["training"]}
    for (p, k), r in by.items():
        prev, nxt = by.get((p, k - 1), r), by.get((p, k + 1), r)
        assert r["neighbors"] == [prev["image"], nxt["image"]]
        assert all((tmp_path / "out" / v).is_file() for v in r["neighbors"])
