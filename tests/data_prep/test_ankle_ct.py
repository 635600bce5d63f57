"""medpipe prepare/synth ankle-ct: manifest rows joined to volumes, series and slices; accounting; class folds."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import ankle_ct as ac
from data_prep.ankle_ct import layout as L
from data_prep.ankle_ct.synth import nifti_gz_bytes, synthesize
from medpipe.cli import main as cli_main
from medpipe.errors import DataError
from tests.conftest import REPO

FALLBACK_DICOM = REPO.parent / "shared" / "data" / "fallback_head_ct_dicom" / "CT_DICOM"
K, S = 6, 16  # slices, in-plane size of the hand-made volumes
HEADER = "image,label,patient,side,slices\n"


def display_volume(value: float = 1000.0) -> np.ndarray:
    """``(K, S, S)`` HU: soft tissue with a bright bone in the display's left columns; slice k brighter with k."""
    v = np.full((K, S, S), 40.0, np.float32)
    for k in range(K):
        v[k, 4:12, 1:5] = value + 50 * k
    return v


def write_volume(root: Path, rel: str, vol: np.ndarray | None = None) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(nifti_gz_bytes(display_volume() if vol is None else vol, (0.5, 0.5, 2.0)))


def make_src(root: Path, manifest: str, volumes=("P1/a.nii.gz", "P2/b.nii.gz", "P3/c.nii.gz", "P4/d.nii.gz")) -> Path:
    for rel in volumes:
        write_volume(root, rel)
    (root / "labels.csv").write_text(manifest)
    return root


def run(src, out, **kw):
    kw.setdefault("folds", 2)
    return ac.prepare(src, out, kw, workers=1, progress=None)


def load(out: Path):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


GOOD = HEADER + "P1/a.nii.gz,normal,P1,R,\nP2/b.nii.gz,1,P2,L,2:3\nP3/c.nii.gz,Talus_Fracture,P3,,\nP4/d.nii.gz,6,P4,R,\n"


# ---------------------------------------------------------------------------------------- layout parsers


@pytest.mark.parametrize("value, expected", [
    ("0", (0, None)), ("6", (6, None)), ("1.0", (1, None)), ("normal", (0, None)), (" NORMAL ", (0, None)),
    ("7", (None, "label_out_of_range")), ("-1", (None, "label_out_of_range")), ("1.5", (None, "label_out_of_range")),
    ("broken", (None, "unknown_class")), ("", (None, "empty_label")),
])
def test_parse_label(value, expected):
    assert L.parse_label(value, L.CLASS_NAMES) == expected


@pytest.mark.parametrize("text, expected", [("40:80", ((40, 80), True)), ("3-5", ((3, 5), True)),
                                            ("7", ((7, 7), True)), ("", (None, True)), ("9:2", (None, False)),
                                            ("a:b", (None, False))])
def test_parse_slices(text, expected):
    assert L.parse_slices(text) == expected


def test_parse_classes_needs_seven():
    with pytest.raises(ValueError):
        L.parse_classes("a,b,c")


# ---------------------------------------------------------------------------------------- synth -> prepare


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("ankle")
    raw = root / "raw"
    summary = synthesize(raw, patients=10, size=32, seed=1, slices=8)
    out = root / "prep"
    rep = ac.prepare(raw, out, {"folds": 3, "manifest": str(raw / "labels.csv")}, workers=2, progress=None)
    return raw, out, summary, rep


def test_synth_summary_and_repeat(synth_set):
    raw, _, summary, _ = synth_set
    assert summary["scans"] == 10 + 1  # every sixth patient has a second ankle
    assert summary["classes"]["lateral_malleolus_fracture"] == 3 and sum(summary["classes"].values()) == 11
    assert summary["left"] >= 1
    assert synthesize(raw, patients=10, size=32, seed=1, slices=8) == summary  # already made: nothing to do
    with pytest.raises(FileExistsError):
        synthesize(raw, patients=11, size=32, seed=1, slices=8)


def test_synth_prepare_round_trip(synth_set):
    raw, out, summary, rep = synth_set
    dl, rj = load(out)
    assert rj["accounting"]["adds_up"] and rj["accounting"]["files_skipped"] == 0
    assert rj["inputs"] == {"manifest": 1, "volume": 11, "total": 12}
    assert rj["manifest"]["rows_adds_up"] and rj["manifest"]["rows_in_records"] == 11
    recs = dl["training"]
    assert recs and all({"image", "patient", "label", "volume", "slice", "side", "spacing", "source", "fold"} <= set(r)
                        for r in recs)
    assert dl["tasks"]["label"] == {"kind": "multiclass", "class_names": list(L.CLASS_NAMES)}
    fold_of = {}
    for r in recs:
        assert fold_of.setdefault(r["patient"], r["fold"]) == r["fold"]  # a patient is in one fold
        assert (out / r["image"]).is_file() and r["spacing"] == [2.0, 3.75, 3.75]
    # a fracture row's `slices` range limits its records to those slices
    rows = {r["image"]: r for r in csv.DictReader((raw / "labels.csv").open())}
    for vol, row in rows.items():
        ks = sorted(r["slice"] for r in recs if r["volume"] == vol)
        if row["slices"]:
            a, b = map(int, row["slices"].split(":"))
            assert ks == list(range(a, b + 1))
        else:
            assert ks == list(range(8))
    # per-class counts per fold, and a warning for each class absent from a fold
    names = list(L.CLASS_NAMES)
    for f in rj["folds"]:
        assert sum(f[n] for n in names) == f["records"]
        absent = [n for n in names if f[n] == 0]
        warned = next((w["absent_classes"] for w in rj["class_warnings"] if w["fold"] == f["fold"]), [])
        assert warned == absent
    assert rj["class_warnings"]  # 10 patients, 7 classes, 3 folds: some class is missing somewhere
    md = (out / "prepare_report.md").read_text()
    assert "## Class balance per fold" in md and "**warning**" in md and "syndesmotic_widening |" in md
    # the bone window: cortex (1200 HU) near white, soft tissue gray, air black
    img = np.asarray(Image.open(out / recs[0]["image"]))
    assert img.min() == 0 and img.max() > 200


# ---------------------------------------------------------------------------------------- manifest quirks


def test_names_numbers_ranges_and_mirroring(tmp_path):
    src = make_src(tmp_path / "src", GOOD)
    out = tmp_path / "out"
    run(src, out, mirror_left=True)
    dl, rj = load(out)
    recs = dl["training"]
    labels = {r["volume"]: r["label"] for r in recs}
    assert labels == {"P1/a.nii.gz": 0, "P2/b.nii.gz": 1, "P3/c.nii.gz": 3, "P4/d.nii.gz": 6}
    assert sorted(r["slice"] for r in recs if r["volume"] == "P2/b.nii.gz") == [2, 3]
    right = next(r for r in recs if r["volume"] == "P1/a.nii.gz" and r["slice"] == 2)
    left = next(r for r in recs if r["volume"] == "P2/b.nii.gz" and r["slice"] == 2)
    assert left["side"] == "L" and left["mirrored"] and not right["mirrored"]
    a, b = np.asarray(Image.open(out / right["image"])), np.asarray(Image.open(out / left["image"]))
    assert np.array_equal(a[:, ::-1], b)  # the left ankle mirrored to the right one's side
    assert a[6, 2] > a[6, 10]  # the bright bone stays on the display's left (radiological, as written)
    assert rj["accounting"]["adds_up"] and not rj["anomalies"]
    # the whole kept volume, stored once for 3-D models: exactly the slice PNGs, in slice order
    vol = np.load(out / left["volume_image"])["volume"]
    pngs = sorted((r for r in recs if r["volume"] == "P2/b.nii.gz"), key=lambda r: r["slice"])
    assert vol.shape == (2, S, S) and vol.dtype == np.uint8
    assert all(np.array_equal(vol[i], np.asarray(Image.open(out / r["image"]))) for i, r in enumerate(pngs))
    assert len({r["volume_image"] for r in recs}) == 4


def test_input_window_follows_the_options(tmp_path):
    """Inference converts volumes with the window the preparation used, not the dataset's default."""
    src = make_src(tmp_path / "src", GOOD)
    run(src, tmp_path / "out", window_level=500, window_width=2000)
    dl, _ = load(tmp_path / "out")
    assert dl["input"]["window"] == [500.0, 2000.0] == dl["window"]


def test_configurable_columns_and_spacing(tmp_path):
    man = "File;Diagnosis;Patient ID;Range\nP1/a.nii.gz;0;P1;\nP2/b.nii.gz;joint_space_narrowing;P2;1:2\n" \
          "P3/c.nii.gz;1;P3;\nP4/d.nii.gz;1;P4;\n"
    src = make_src(tmp_path / "src", man)
    with pytest.raises(DataError, match="image-column"):
        run(src, tmp_path / "bad")
    run(src, tmp_path / "out", image_column="File", label_column="diagnosis", patient_column="patient_id",
        slices_column="Range", spacing=1.0)
    dl, rj = load(tmp_path / "out")
    r = dl["training"][0]
    assert (r["width"], r["height"]) == (8, 8) and r["spacing"] == [2.0, 1.0, 1.0]
    assert np.load(tmp_path / "out" / r["volume_image"])["volume"].shape[1:] == (8, 8)  # resampled like the PNGs
    assert r["source"]["spacing"] == [2.0, 0.5, 0.5]
    assert rj["manifest"]["columns"]["side_column"] is None


def test_excel_manifest_and_classes(tmp_path):
    pytest.importorskip("openpyxl")
    import pandas as pd

    src = make_src(tmp_path / "src", "x\n")
    (src / "labels.csv").unlink()
    pd.DataFrame({"image": ["P1/a.nii.gz", "P2/b.nii.gz", "P3/c.nii.gz", "P4/d.nii.gz"],
                  "label": ["c0", "c1", "2", "c1"], "patient": ["P1", "P2", "P3", "P4"]}).to_excel(
        src / "labels.xlsx", index=False)
    run(src, tmp_path / "out", classes="c0,c1,c2,c3,c4,c5,c6")
    dl, rj = load(tmp_path / "out")
    assert sorted({r["label"] for r in dl["training"]}) == [0, 1, 2]
    assert dl["class_names"][1] == "c1" and rj["manifest"]["format"] == "xlsx"


def test_png_slices_pass_through(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        a = np.zeros((12, 20), np.uint8)
        a[:, :5] = 200 + i
        Image.fromarray(a).save(src / f"s{i}.png")
    (src / "labels.csv").write_text(HEADER + "".join(f"s{i}.png,{i % 2},P{i},L,\n" for i in range(4)))
    run(src, tmp_path / "out", mirror_left=True)
    dl, _ = load(tmp_path / "out")
    r = next(r for r in dl["training"] if r["volume"] == "s0.png")
    b = np.asarray(Image.open(tmp_path / "out" / r["image"]))
    assert b.shape == (12, 20) and b[0, -1] == 200 and r["spacing"] is None and r["slice"] == 0
    assert "volume_image" not in r  # a 2D slice has no volume for a 3-D model
    from medpipe.data.datalist import load_split

    with pytest.raises(DataError, match="no stored volume.*--spatial_dims 2"):
        load_split(tmp_path / "out", 0, "trainval", level="volume")


# ---------------------------------------------------------------------------------------- bad input


def _dicom_copy(dst: Path, n: int = 4) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(FALLBACK_DICOM.iterdir())[:n]
    for f in files:
        shutil.copy(f, dst / f.name)
    return [dst / f.name for f in files]


def _mixed_series(root: Path) -> None:
    import pydicom

    copies = _dicom_copy(root / "P4" / "series")
    for f in copies[2:]:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = ds.SeriesInstanceUID + ".99"
        ds.save_as(f)


def _four_d(root: Path) -> None:
    import nibabel as nib

    (root / "P4" / "d.nii.gz").unlink()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.int16), np.eye(4)), root / "P4" / "d.nii.gz")


def _damaged(root: Path) -> None:
    (root / "P4" / "d.nii.gz").write_bytes(b"not a volume")


ROWS4 = "P1/a.nii.gz,0,P1,R,\nP2/b.nii.gz,1,P2,R,\nP3/c.nii.gz,1,P3,R,\n"


@pytest.mark.parametrize("case, last_rows, setup, kind, where", [
    ("missing file", "P4/gone.nii.gz,1,P4,R,\n", None, "missing_file", "anomaly"),
    ("unknown class", "P4/d.nii.gz,brokn,P4,R,\n", None, "unknown_class", "skipped"),
    ("label out of range", "P4/d.nii.gz,9,P4,R,\n", None, "label_out_of_range", "skipped"),
    ("conflicting labels", "P4/d.nii.gz,1,P4,R,\nP4/d.nii.gz,2,P4,R,\n", None, "conflicting_labels", "skipped"),
    ("4-D volume", "P4/d.nii.gz,1,P4,R,\n", _four_d, "not_3d", "skipped"),
    ("unreadable", "P4/d.nii.gz,1,P4,R,\n", _damaged, "unreadable", "skipped"),
    ("slices outside", "P4/d.nii.gz,1,P4,R,40:80\n", None, "no_slices", "skipped"),
    ("mixed series", "P4/series,1,P4,R,\n", _mixed_series, "mixed_series", "skipped"),
])
def test_bad_input_reported_and_counted(tmp_path, case, last_rows, setup, kind, where):
    if setup is _mixed_series and not FALLBACK_DICOM.is_dir():
        pytest.skip(f"the real DICOM series {FALLBACK_DICOM} is absent (shared data not mounted)")
    src = make_src(tmp_path / "src", HEADER + ROWS4 + last_rows)
    if setup is not None:
        setup(src)
    rep = run(src, tmp_path / "out")
    acc = rep["accounting"]
    assert acc["adds_up"] and acc["files_seen"] == acc["files_in_records"] + acc["files_skipped"]
    assert rep["manifest"]["rows_adds_up"]
    assert {r for r in load(tmp_path / "out")[0]["patients"]} == {"P1", "P2", "P3"}
    if where == "skipped":
        hits = [s for s in rep["skipped"] if s["kind"] == kind]
        assert hits and all(s["path"].startswith("P4/") for s in hits), rep["skipped"]
        assert "line 5" in hits[0]["reason"] or "lines 5" in hits[0]["reason"]  # names the manifest row
    else:
        hits = [a for a in rep["anomalies"] if a["kind"] == kind]
        assert hits and "line 5" in hits[0]["path"] and "P4/gone.nii.gz" in hits[0]["action"]
    assert hits[0]["path"].split(" ")[0] in (tmp_path / "out" / "prepare_report.md").read_text()
    if case == "mixed series":
        assert "2 files" in hits[0]["reason"] and len(hits) == 4  # both series named, every file counted
    with pytest.raises(DataError, match="--strict"):  # nothing half-written: the old output stays
        run(src, tmp_path / "out", strict=True)
    assert (tmp_path / "out" / "datalist.json").is_file()


def test_unreferenced_files_and_missing_manifest(tmp_path):
    src = make_src(tmp_path / "src", HEADER + ROWS4, volumes=("P1/a.nii.gz", "P2/b.nii.gz", "P3/c.nii.gz", "extra.nii"))
    (src / "notes.txt").write_text("hello")
    rep = run(src, tmp_path / "out")
    assert {s["path"] for s in rep["skipped"] if s["kind"] == "not_in_manifest"} == {"extra.nii", "notes.txt"}
    assert rep["accounting"]["adds_up"]
    (src / "labels.csv").rename(src / "labels-old.csv")
    (src / "other.csv").write_text("a\n")
    with pytest.raises(DataError, match="--manifest"):
        run(src, tmp_path / "out2")


# ---------------------------------------------------------------------------------------- DICOM series


def test_dicom_series_read(tmp_path):
    if not FALLBACK_DICOM.is_dir():
        pytest.skip(f"the real DICOM series {FALLBACK_DICOM} is absent (shared data not mounted)")
    src = tmp_path / "src"
    _dicom_copy(src / "H1" / "series")
    (src / "H1" / "series" / "README.txt").write_text("not a DICOM")
    make_src(src, HEADER + "H1/series,normal,H1,R,\n" + ROWS4, volumes=("P1/a.nii.gz", "P2/b.nii.gz", "P3/c.nii.gz"))
    rep = run(src, tmp_path / "out")
    dl, _ = load(tmp_path / "out")
    recs = [r for r in dl["training"] if r["volume"] == "H1/series"]
    assert len(recs) == 4 and recs[0]["source"]["kind"] == "dicom_series"
    assert recs[0]["spacing"][1:] == pytest.approx([0.488281, 0.488281]) and (recs[0]["width"], recs[0]["height"]) == (16, 16)
    assert [s["kind"] for s in rep["skipped"]] == ["not_in_series"] and rep["accounting"]["adds_up"]


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert cli_main(["synth", "ankle-ct", "--out", str(tmp_path / "raw"), "--patients", "6", "--size", "32",
                     "--slices", "8"]) == 0
    assert cli_main(["prepare", "ankle-ct", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                     "--manifest", str(tmp_path / "raw" / "labels.csv"), "--folds", "2", "--workers", "1",
                     "--mirror-left"]) == 0
    text = capsys.readouterr().out
    assert "manifest: 7 rows" in text and "wrote" in text
    assert cli_main(["prepare", "ankle-ct", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                     "--manifest", str(tmp_path / "raw" / "labels.csv"), "--folds", "2", "--workers", "1",
                     "--mirror-left"]) == 0
    assert "up to date" in capsys.readouterr().out
