"""medpipe prepare rsna-pneumonia: label-CSV quirks, DICOM handling, bad DICOMs, splits, exports, accounting."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import rsna_pneumonia as rsna
from data_prep.rsna_pneumonia import layout as L
from data_prep.rsna_pneumonia import tables as T
from data_prep.rsna_pneumonia.convert import scale_boxes
from data_prep.rsna_pneumonia.synth import dicom_bytes
from medpipe.cli import main as cli_main
from medpipe.errors import DataError, UserError
from tests.conftest import REPO
from tests.io.test_dicom import REAL_CXR, _bad_cases, make_dicom

SHARED_RSNA = REPO.parent / "shared" / "data" / "RSNA-Pneumonia"
SIZE = 64
LO, NN, NO = L.LUNG_OPACITY, L.NOT_NORMAL, L.NORMAL


def pid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


#: (class, boxes (x, y, w, h) in 64-px DICOM pixels, view, DICOM variant)
PATIENTS = [
    (LO, [(8.0, 10.0, 16.0, 20.0), (40.0, 12.0, 14.0, 24.0)], "AP", "jpeg"),
    (LO, [(36.0, 20.0, 20.0, 16.0)], "AP", "mono1"),
    (LO, [(6.0, 30.0, 18.0, 18.0)], "PA", "rescale"),
    (NN, [], "AP", "bits10"),
    (NN, [], "PA", "jpeg"),
    (NO, [], "PA", "jpeg"),
    (NO, [], "PA", "mono1"),
    (NO, [], "AP", "jpeg"),
]


def image_for(boxes, size: int = SIZE) -> np.ndarray:
    a = np.full((size, size), 50, np.uint8)
    a[:, : size // 8] = 10  # a dark band on the left: MONOCHROME1 mistakes show
    for x, y, w, h in boxes:
        a[int(y): int(y + h), int(x): int(x + w)] = 210
    return a


def write_dicom(path: Path, p: str, boxes, view="PA", variant="jpeg", age="51", sex="M", size=SIZE) -> np.ndarray:
    img = image_for(boxes, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dicom_bytes(img, {"patient_id": p, "view": view, "age": age, "sex": sex, "spacing": 2.5,
                                       "study": "1.2.3.1", "series": "1.2.3.2", "instance": f"1.2.3.{int(p[:8], 16) + 9}"},
                                 variant))
    return img


def label_rows(p: str, cls: str, boxes) -> tuple[list[str], list[str]]:
    rows = [f"{p},{x:.1f},{y:.1f},{w:.1f},{h:.1f},1" for x, y, w, h in boxes] if cls == LO else [f"{p},,,,,0"]
    return rows, [f"{p},{cls}"] * len(rows)


def make_dataset(root: Path, patients=PATIENTS, tests: int = 2, drop_class=(), submission=True) -> Path:
    """The real layout: both CSVs (one row per box, blank boxes for negatives), train and test DICOMs."""
    labels, classes = [",".join(L.LABEL_COLUMNS)], [",".join(L.CLASS_COLUMNS)]
    for i, (cls, boxes, view, variant) in enumerate(patients):
        p = pid(i)
        write_dicom(root / L.TRAIN_DIR / f"{p}.dcm", p, boxes, view, variant)
        lr, cr = label_rows(p, cls, boxes)
        labels += lr
        if p not in drop_class:
            classes += cr
    test_ids = [pid(1000 + k) for k in range(tests)]
    for p in test_ids:
        write_dicom(root / L.TEST_DIR / f"{p}.dcm", p, [], "PA")
    (root / L.LABELS_FILE).write_text("\n".join(labels) + "\n")
    (root / L.CLASS_FILE).write_text("\n".join(classes) + "\n")
    if submission:
        (root / L.SUBMISSION_FILE).write_text("patientId,PredictionString\n"
                                              + "".join(f"{p},0.5 0 0 100 100\n" for p in test_ids))
    return root


def run(src, out, **kw):
    workers = kw.pop("workers", 1)
    kw.setdefault("folds", 2)
    return rsna.prepare(src, out, kw, workers=workers, progress=None)


def load(out):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


def records(out) -> dict:
    dl, _ = load(out)
    return {r["patient"]: r for r in dl["training"] + dl.get("test", [])}


@pytest.fixture
def src(tmp_path):
    return make_dataset(tmp_path / "rsna")


# ---------------------------------------------------------------------------------------- label CSVs


def test_label_file_quirks(tmp_path):
    a, b, c, d = pid(1), pid(2), pid(3), pid(4)
    (tmp_path / "l.csv").write_text(
        "patientId,x,y,width,height,Target\n"
        f"{a},264.0,152.0,213.0,379.0,1\n{a},562.0,152.0,256.0,453.0,1\n"  # two boxes, one patient
        f"{b},,,,,0\n"  # a negative: blank box fields
        f"{c},1,2,3,4,1\n{c},1,2,3,4,1\n"  # the same box twice
        f"{d},,,,,0\n{d},10,10,5,5,1\n"  # Target 0 and 1 for one patient
        "broken,1,2,x,4,1\n"  # unusable
        f"{pid(5)},,,,,1\n"  # Target 1 without a box
        f"{pid(6)},1,1,2,2,0\n")  # Target 0 with a box
    pats, info = T.read_labels(tmp_path / "l.csv")
    assert pats[a].target == 1 and pats[a].boxes == [(264.0, 152.0, 213.0, 379.0), (562.0, 152.0, 256.0, 453.0)]
    assert pats[a].rows == 2 and pats[b].target == 0 and pats[b].boxes == [] and pats[c].boxes == [(1, 2, 3, 4)]
    assert pats[d].target == 1 and pats[d].boxes == [(10, 10, 5, 5)]
    assert pats[pid(5)].target == 1 and pats[pid(5)].boxes == [] and pats[pid(6)].boxes == []
    assert (info["rows"], info["patients"], info["positive_patients"], info["boxes"]) == (10, 6, 4, 4)
    assert info["rows_per_patient"] == {1: 3, 2: 3} and info["blank_box_rows"] == 3
    assert {k: info[k]["count"] for k in ("malformed_rows", "duplicate_boxes", "target_conflicts",
                                          "positive_without_box", "negative_with_box")} == \
        {"malformed_rows": 1, "duplicate_boxes": 1, "target_conflicts": 1, "positive_without_box": 1,
         "negative_with_box": 1}


def test_a_pandas_rewrite_reads_the_same(tmp_path):
    (tmp_path / "l.csv").write_text(f",patientId,x,y,width,height,Target\n0,{pid(1)},1.0,2.0,3.0,4.0,1\n1,{pid(2)},,,,,0\n")
    pats, info = T.read_labels(tmp_path / "l.csv")
    assert pats[pid(1)].boxes == [(1.0, 2.0, 3.0, 4.0)] and pats[pid(2)].target == 0 and "malformed_rows" not in info


@pytest.mark.parametrize("target, rows, classes, expected", [
    (1, 2, {LO: 2}, (LO, None)),
    (1, 2, {LO: 1}, (LO, "class_rows_differ")),  # the real copy's kind of gap: class still complete
    (1, 1, None, (LO, "class_row_missing")),  # inferred from Target 1
    (0, 1, None, (None, "class_row_missing")),  # Normal or Not Normal: unknown
    (0, 1, {NO: 1}, (NO, None)),
    (0, 1, {NN: 1}, (NN, None)),
    (0, 1, {NO: 1, NN: 1}, (None, "class_conflict")),
    (0, 1, {LO: 1}, (None, "class_target_disagree")),
    (1, 1, {NO: 1}, (LO, "class_target_disagree")),  # Target decides opacity
])
def test_merge_classes(target, rows, classes, expected):
    m = T.merge_classes(T.PatientLabels(target, rows=rows), Counter(classes) if classes else None)
    assert (m.class_name, m.problem) == expected


@pytest.mark.parametrize("name, text, match", [
    (L.LABELS_FILE, "patientId,x,y,w,h,Target\n", r"stage_2_train_labels.csv: not the label file: no 'width', "
                                                   r"'height' column.*Re-download"),
    (L.CLASS_FILE, "patientId,label\n", r"stage_2_detailed_class_info.csv: not the detailed class file: no 'class'"),
    (L.LABELS_FILE, "", r"stage_2_train_labels.csv: the label file is empty"),
])
def test_csv_without_its_columns_is_named(src, tmp_path, name, text, match):
    (src / name).write_text(text)
    with pytest.raises(DataError, match=match) as e:
        run(src, tmp_path / "out")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


@pytest.fixture
def real_csv_head(tmp_path):
    """The first ~5,700 rows of the real label file and the class rows of the same patients (one is missing)."""
    if not (SHARED_RSNA / L.LABELS_FILE).is_file():
        pytest.skip(f"real RSNA label CSVs not found at {SHARED_RSNA} (shared data absent)")
    full = (SHARED_RSNA / L.LABELS_FILE).read_text().splitlines()
    n = 5700
    while full[n].split(",")[0] == full[n - 1].split(",")[0]:  # end on a whole patient
        n += 1
    head = full[:n]
    pats = {line.split(",")[0] for line in head[1:]}
    cls = [line for i, line in enumerate((SHARED_RSNA / L.CLASS_FILE).read_text().splitlines())
           if i == 0 or line.split(",")[0] in pats]
    root = tmp_path / "real"
    root.mkdir()
    (root / L.LABELS_FILE).write_text("\n".join(head) + "\n")
    (root / L.CLASS_FILE).write_text("\n".join(cls) + "\n")
    return root


MISSING = "489a175a-4c5c-4b7f-8fdc-cd8514404dbe"


@pytest.mark.realdata
def test_real_csv_head_missing_class_row(real_csv_head):
    labels, info = T.read_labels(real_csv_head / L.LABELS_FILE)
    classes, cinfo = T.read_classes(real_csv_head / L.CLASS_FILE)
    assert info["rows"] >= 5699 and cinfo["rows"] == info["rows"] - 1 and set(classes) < set(labels)
    assert not {k for k in info if k.endswith(("_rows", "_conflicts", "_box", "_boxes", "_ids"))} - {"blank_box_rows"}
    assert max(info["rows_per_patient"]) == 4 and info["blank_box_rows"] == sum(1 - p.target for p in labels.values())
    merged = {p: T.merge_classes(lab, classes.get(p)) for p, lab in labels.items()}
    problems = {p: m for p, m in merged.items() if m.problem}
    assert list(problems) == [MISSING] and problems[MISSING].problem == "class_row_missing"
    assert merged[MISSING].class_name == LO and labels[MISSING].boxes == [(636.0, 522.0, 158.0, 116.0)]


@pytest.mark.realdata
def test_real_csv_head_and_real_dicom_through_prepare(real_csv_head, tmp_path):
    if not REAL_CXR.is_file():
        pytest.skip(f"real chest X-ray DICOM not found at {REAL_CXR}")
    labels, _ = T.read_labels(real_csv_head / L.LABELS_FILE)
    pos = [p for p in sorted(labels) if labels[p].target and p != MISSING][:3]
    neg = [p for p in sorted(labels) if not labels[p].target][:4]
    for p in [MISSING, *pos, *neg]:  # the real 1024-px radiograph stands in for each patient's DICOM
        (real_csv_head / L.TRAIN_DIR).mkdir(exist_ok=True)
        shutil.copy(REAL_CXR, real_csv_head / L.TRAIN_DIR / f"{p}.dcm")
    rep = run(real_csv_head, tmp_path / "out", cache_size=256, label_set="three-class")
    recs = records(tmp_path / "out")
    r = recs[MISSING]
    assert (r["label"], r["target"], r["class_name"]) == (2, 1, LO)
    assert r["boxes"] == [[159.0, 130.5, 198.5, 159.5]]  # (636, 522, 158, 116) in 1024 px, scaled to 256
    assert (r["width"], r["view"], r["age"], r["sex"], r["pixel_spacing"]) == (256, "PA", 62, "M", [0.168, 0.168])
    assert r["stored_pixel_spacing"] == [0.672, 0.672] and r["source"]["transfer_syntax"] == "JPEG Baseline (Process 1)"
    assert rep["records"] == 8 and rep["accounting"]["adds_up"]
    missing = [a for a in rep["anomalies"] if a["kind"] == "class_row_missing"]
    assert len(missing) == 1 and MISSING in missing[0]["action"] and "inferred from Target 1" in missing[0]["action"]
    assert rep["anomaly_counts"]["patient_id_mismatch"] == 8  # the stand-in's header names its own patient
    assert rep["label_file"]["patients_without_dicom"] == len(labels) - 8 and rep["label_file"]["adds_up"]
    with Image.open(tmp_path / "out" / r["image"]) as im:
        a = np.asarray(im)
    assert im.size == (256, 256) and a[100:150, 120:136].mean() > a[100:150, 60:90].mean()  # mediastinum > lung


# ---------------------------------------------------------------------------------------- prepare


def test_records_datalist_and_exports(src, tmp_path):
    rep = run(src, tmp_path / "out", cache_size=32)
    dl, _ = load(tmp_path / "out")
    assert dl["tasks"] == {"label": {"kind": "binary", "class_names": ["no_opacity", "lung_opacity"]},
                           "boxes": {"kind": "detection", "class_names": ["lung_opacity"]}}
    assert dl["input"]["modality"] == "XR" and dl["input"]["slice_pattern"] == L.STEM_PATTERN
    r = records(tmp_path / "out")[pid(0)]
    assert set(r) == {"image", "patient", "label", "boxes", "target", "class_name", "view", "age", "sex",
                      "pixel_spacing", "stored_pixel_spacing", "width", "height", "source", "fold"}
    assert r["image"] == f"images/{pid(0)}.png" and r["source"]["path"] == f"{L.TRAIN_DIR}/{pid(0)}.dcm"
    assert (r["label"], r["target"], r["class_name"], r["view"], r["age"], r["sex"]) == (1, 1, LO, "AP", 51, "M")
    assert r["boxes"] == [[4.0, 5.0, 12.0, 15.0], [20.0, 6.0, 27.0, 18.0]]  # halved: 64 -> 32 px
    assert (r["width"], r["height"], r["pixel_spacing"], r["stored_pixel_spacing"]) == (32, 32, [2.5, 2.5], [5.0, 5.0])
    assert rep["records"] == 8 and rep["positives"] == 3 and rep["inference_records"] == 2
    assert [e["image"] for e in dl["inference"]] == [f"inference/{pid(1000)}.png", f"inference/{pid(1001)}.png"]
    assert all("label" not in e and "fold" not in e for e in dl["inference"])
    assert not {e["patient"] for e in dl["inference"]} & {r["patient"] for r in dl["training"]}
    assert rep["accounting"] == {"files_seen": 13, "files_in_records": 13, "files_skipped": 0, "adds_up": True,
                                 "ignored_medpipe_files": 0}
    assert rep["inputs"] == {"class_file": 1, "dicom": 8, "label_file": 1, "submission": 1, "test_dicom": 2,
                             "total": 13}
    assert rep["skipped"] == [] and rep["anomalies"] == []
    from monai.data import load_decathlon_datalist

    assert len(load_decathlon_datalist(tmp_path / "out/datalist.json", data_list_key="training")) == 8
    assert len(load_decathlon_datalist(tmp_path / "out/datalist.json", data_list_key="inference")) == 2
    # exports: labels.csv and the YOLO tree of the opacity boxes (phe-sich's shared writer)
    lines = (tmp_path / "out/labels.csv").read_text().splitlines()
    assert lines[0] == "image,patient,fold,label,target,class_name,view,age,sex" and len(lines) == 9
    yolo = list((tmp_path / "out/yolo/labels").rglob(f"{pid(0)}.txt"))
    assert len(yolo) == 1 and yolo[0].read_text() == ("0 0.250000 0.312500 0.250000 0.312500\n"
                                                       "0 0.734375 0.375000 0.218750 0.375000\n")
    assert (tmp_path / "out/yolo/data.yaml").read_text().count("lung_opacity") == 1


@pytest.mark.parametrize("variant", ["jpeg", "mono1", "rescale", "bits10"])
def test_photometric_rescale_and_bits_stored_give_the_same_picture(tmp_path, variant):
    """Every encoding the synthesizer writes is stored as the same 8-bit picture (JPEG up to its loss)."""
    patients = [(LO, [(20.0, 16.0, 24.0, 30.0)], "AP", variant)] + [(NO, [], "PA", variant)] * 3
    src = make_dataset(tmp_path / "src", patients)
    rep = run(src, tmp_path / "out")
    r = records(tmp_path / "out")[pid(0)]
    with Image.open(tmp_path / "out" / r["image"]) as im:
        got = np.asarray(im).astype(int)
    want = image_for(patients[0][1]).astype(int)
    assert np.abs(got - want).mean() < (2.0 if variant == "jpeg" else 0.51), variant
    assert got[30, 30] > 180 and got[30, 2] < 30  # the opacity is bright, the band dark
    expect = {"jpeg": ("MONOCHROME2", 8, None, False), "mono1": ("MONOCHROME1", 12, None, True),
              "rescale": ("MONOCHROME2", 12, [2.0, -1024.0], False), "bits10": ("MONOCHROME2", 10, None, False)}
    s = r["source"]
    assert (s["photometric"], s["bits_stored"], s["rescale"], s["inverted"]) == expect[variant]
    assert rep["dicom"]["inverted_monochrome1"] == (4 if variant == "mono1" else 0)


def test_window_intensity_uses_the_header_window(tmp_path):
    src = make_dataset(tmp_path / "src", [(NO, [], "PA", "rescale")] * 4)
    rep = run(src, tmp_path / "out", intensity="window")
    assert rep["dicom"]["intensity"] == {"window": 4}
    with Image.open(tmp_path / "out" / records(tmp_path / "out")[pid(0)]["image"]) as im:
        assert np.abs(np.asarray(im).astype(int) - image_for([])).max() <= 1  # its window spans the range


def test_every_bad_dicom_is_skipped_with_its_reason_and_counted(src, tmp_path):
    cases = _bad_cases(tmp_path)
    labels = (src / L.LABELS_FILE).read_text()
    for k, (_name, data, _cls, _kind) in enumerate(cases):
        p = pid(500 + k)
        (src / L.TRAIN_DIR / f"{p}.dcm").write_bytes(data)
        labels += f"{p},,,,,0\n"
    (src / L.LABELS_FILE).write_text(labels)
    rep = run(src, tmp_path / "out")
    want = Counter(kind for *_x, kind in cases)
    assert rep["skipped_counts"] == dict(want) and rep["records"] == 8
    assert rep["accounting"]["adds_up"] and rep["accounting"]["files_skipped"] == len(cases)
    by_path = {s["path"]: s for s in rep["skipped"]}
    for k, (name, *_r, kind) in enumerate(cases):
        s = by_path[f"{L.TRAIN_DIR}/{pid(500 + k)}.dcm"]
        assert s["kind"] == kind and s["reason"] and not s["reason"].startswith(L.TRAIN_DIR), name
    lf = rep["label_file"]
    assert lf["patients_whose_dicom_was_skipped"] == len(cases) and lf["adds_up"]
    md = (tmp_path / "out/prepare_report.md").read_text()
    assert "DICOM cut short" in md and "DICOM of another modality" in md
    skipped_md = md.split("## Skipped")[1]
    assert all(f"`{L.TRAIN_DIR}/{pid(500 + k)}.dcm`" in skipped_md for k in range(len(cases)))
    assert "2 frames (NumberOfFrames)" in skipped_md


def test_label_rows_without_dicom_and_dicoms_without_label_rows(src, tmp_path):
    (src / L.TRAIN_DIR / f"{pid(5)}.dcm").unlink()  # its label row stays
    write_dicom(src / L.TRAIN_DIR / f"{pid(99)}.dcm", pid(99), [])  # no label row
    write_dicom(src / "extra" / L.TRAIN_DIR / f"{pid(0)}.dcm", pid(0), [])  # a second copy
    (src / "README.txt").write_text("hello")
    rep = run(src, tmp_path / "out")
    assert rep["skipped_counts"] == {"no_label_row": 1, "duplicate": 1, "not_in_layout": 1}
    dup = next(s for s in rep["skipped"] if s["kind"] == "duplicate")
    assert dup["path"] == f"extra/{L.TRAIN_DIR}/{pid(0)}.dcm" and f"kept {L.TRAIN_DIR}/{pid(0)}.dcm" in dup["reason"]
    no = [a for a in rep["anomalies"] if a["kind"] == "label_row_without_dicom"]
    assert len(no) == 1 and pid(5) in no[0]["action"]
    lf = rep["label_file"]
    assert (lf["patients"], lf["patients_with_dicom"], lf["patients_without_dicom"], lf["patients_in_records"]) == \
        (8, 7, 1, 7) and lf["adds_up"] and rep["accounting"]["adds_up"]


def test_test_size_holds_out_exactly_n_patients_and_the_split_is_audited(tmp_path):
    patients = [PATIENTS[i % len(PATIENTS)] for i in range(16)]
    src = make_dataset(tmp_path / "src", patients)
    rep = run(src, tmp_path / "a", folds=3, test_size=5)
    dl, _ = load(tmp_path / "a")
    test_p, train_p = {r["patient"] for r in dl["test"]}, {r["patient"] for r in dl["training"]}
    assert len(test_p) == 5 and not test_p & train_p and rep["test_patients"] == sorted(test_p)
    from medpipe.data.splits import audit_patient_split

    assert sum(f["patients"] for f in audit_patient_split(dl["training"], dl["test"]).values()) == 11
    assert {r["fold"] for r in dl["training"]} == {0, 1, 2}
    # deterministic per seed; the three-class label set splits the same way
    run(src, tmp_path / "b", folds=3, test_size=5)
    run(src, tmp_path / "c", folds=3, test_size=5, label_set="three-class")
    parts = [{p: r.get("fold", "test") for p, r in records(tmp_path / x).items()} for x in "abc"]
    assert parts[0] == parts[1] == parts[2]
    other = run(src, tmp_path / "d", folds=3, test_size=5, seed=7)
    assert other["test_patients"] != rep["test_patients"] or \
        {p: r.get("fold") for p, r in records(tmp_path / "d").items()} != parts[0]


def test_test_fraction_also_works(src, tmp_path):
    rep = run(src, tmp_path / "out", test_fraction=0.25)
    assert len(rep["test_patients"]) == 2 and rep["test"]["patients"] == 2  # ceil(0.25 x 8)


@pytest.mark.parametrize("opts, match", [
    ({"test_size": 7}, r"--test-size 7: 8 patients have a record, so at most 6 can be held out with --folds 2"),
    ({"test_size": 2, "test_fraction": 0.2}, r"--test-size 2 and --test-fraction 0.2: give one of them"),
    ({"val_fold": 2}, r"--val-fold 2: must be below --folds 2"),
])
def test_bad_split_options_are_refused(src, tmp_path, opts, match):
    with pytest.raises(UserError, match=match):
        run(src, tmp_path / "out", **opts)
    assert not (tmp_path / "out").exists()


def test_three_class_labels_and_the_missing_class_row(tmp_path):
    src = make_dataset(tmp_path / "src", drop_class=(pid(1), pid(6)))  # an opacity and a normal patient
    rep = run(src, tmp_path / "out", label_set="three-class")
    dl, _ = load(tmp_path / "out")
    assert dl["tasks"]["label"] == {"kind": "multiclass", "class_names": [NO, NN, LO]}
    recs = records(tmp_path / "out")
    assert {p: r["label"] for p, r in recs.items()} == {pid(0): 2, pid(1): 2, pid(2): 2, pid(3): 1, pid(4): 1,
                                                        pid(5): 0, pid(7): 0}
    assert rep["per_class"]["label"] == {NO: 2, NN: 2, LO: 3} and rep["positives"] == 3
    assert rep["skipped_counts"] == {"no_class": 1} and pid(6) in rep["skipped"][0]["reason"]
    assert rep["anomaly_counts"] == {"class_row_missing": 2} and rep["class_file"]["class_row_missing"] == 2
    # binary keeps the Target 0 patient whose class is unknown
    rep = run(src, tmp_path / "bin")
    r = records(tmp_path / "bin")[pid(6)]
    assert rep["records"] == 8 and (r["label"], r["class_name"]) == (0, None)


def test_view_vs_label_table_in_both_reports(src, tmp_path):
    rep = run(src, tmp_path / "out", label_set="three-class")
    vv = rep["view_vs_label"]
    assert vv["table"] == {"AP": {NO: 1, NN: 1, LO: 2}, "PA": {NO: 2, NN: 1, LO: 1}}
    assert vv["positive_rate"] == {"AP": 0.5, "PA": 0.25}
    md = (tmp_path / "out/prepare_report.md").read_text()
    assert "## View position vs label (a known shortcut)" in md
    assert f"| view | {NO} | {NN} | {LO} | images | opacity rate |" in md and "| AP | 1 | 1 | 2 | 4 | 50.0% |" in md
    assert "## DICOM headers" in md and "MONOCHROME1" in md and "## Label files" in md


def test_class_file_is_optional_for_binary_only(src, tmp_path):
    (src / L.CLASS_FILE).unlink()
    rep = run(src, tmp_path / "out")
    assert rep["records"] == 8 and rep["anomaly_counts"] == {"class_file_missing": 1}
    with pytest.raises(DataError, match=r"--label-set three-class needs stage_2_detailed_class_info.csv"):
        run(src, tmp_path / "o3", label_set="three-class")


def test_workers_give_the_same_output(src, tmp_path):
    run(src, tmp_path / "one", workers=1, test_size=2)
    run(src, tmp_path / "two", workers=2, test_size=2)
    a, b = load(tmp_path / "one")[0], load(tmp_path / "two")[0]
    assert a == b
    for r in a["training"]:
        assert (tmp_path / "one" / r["image"]).read_bytes() == (tmp_path / "two" / r["image"]).read_bytes()


def test_strict_writes_nothing(src, tmp_path):
    (src / L.TRAIN_DIR / f"{pid(0)}.dcm").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"--strict: .*1 skipped entries.*Nothing was written"):
        run(src, tmp_path / "out", strict=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("box, size, expected", [
    ((264.0, 152.0, 213.0, 379.0), (1024, 1024, 256, 256), ([[66.0, 38.0, 119.25, 132.75]], 0, 0)),
    ((10.0, 10.0, 20.0, 20.0), (64, 64, 64, 64), ([[10.0, 10.0, 30.0, 30.0]], 0, 0)),
    ((10.0, 20.0, 20.0, 20.0), (64, 64, 32, 16), ([[5.0, 5.0, 15.0, 10.0]], 0, 0)),  # per axis
    ((50.0, 50.0, 30.0, 30.0), (64, 64, 32, 32), ([[25.0, 25.0, 32.0, 32.0]], 1, 0)),  # clipped
    ((70.0, 70.0, 5.0, 5.0), (64, 64, 32, 32), ([], 0, 1)),  # outside: dropped
])
def test_scale_boxes(box, size, expected):
    assert scale_boxes([box], *size) == expected


def test_box_outside_the_image_is_an_anomaly(tmp_path):
    src = make_dataset(tmp_path / "src")
    text = (src / L.LABELS_FILE).read_text().replace(f"{pid(2)},6.0,30.0,18.0,18.0,1", f"{pid(2)},50.0,50.0,30.0,30.0,1")
    (src / L.LABELS_FILE).write_text(text)
    rep = run(src, tmp_path / "out")
    assert records(tmp_path / "out")[pid(2)]["boxes"] == [[50.0, 50.0, 64.0, 64.0]]
    assert rep["anomaly_counts"] == {"box_outside_image": 1}


# ---------------------------------------------------------------------------------------- CLI and errors


def test_rerun_is_up_to_date_and_cli_prints_a_summary(src, tmp_path, capsys):
    argv = ["prepare", "rsna-pneumonia", "--src", str(src), "--out", str(tmp_path / "o"), "--folds", "2",
            "--workers", "1", "--cache-size", "32"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "records: 8 from 8 patients" in out and "opacity rate by view: AP 50%, PA 25%" in out
    assert "inference (unlabelled test images): 2" in out
    assert cli_main(argv + ["--quiet"]) == 0 and "up to date" in capsys.readouterr().out


def test_help_shows_the_dataset_options(capsys):
    with pytest.raises(SystemExit):
        cli_main(["prepare", "rsna-pneumonia", "--help"])
    text = capsys.readouterr().out
    for flag in ("--label-set", "--test-size", "--cache-size", "--intensity", "--val-fold", "--folds", "examples:"):
        assert flag in text, flag


@pytest.mark.parametrize("setup, match", [
    ("no_labels", r"no stage_2_train_labels.csv found under it.*medpipe synth rsna-pneumonia"),
    ("no_dicoms", r"no training DICOMs found: expected stage_2_train_images/<patientId>.dcm"),
    ("only_test", r"no training DICOMs found.*all in a test folder"),
])
def test_missing_parts_are_user_errors(src, tmp_path, capsys, setup, match):
    if setup == "no_labels":
        (src / L.LABELS_FILE).unlink()
    else:
        shutil.rmtree(src / L.TRAIN_DIR)
        if setup == "no_dicoms":
            shutil.rmtree(src / L.TEST_DIR)
    rc = cli_main(["prepare", "rsna-pneumonia", "--src", str(src), "--out", str(tmp_path / "o"), "--folds", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and str(src) in err
    import re

    assert re.search(match, " ".join(err.split())), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, match", [
    (["--label-set", "four"], "argument --label-set: four: expected one of binary, three-class"),
    (["--cache-size", "8"], "argument --cache-size: '8': expected 0 (no cache) or a size from 32"),
    (["--intensity", "auto"], "argument --intensity: auto: expected one of bits, window, minmax"),
    (["--test-size", "-1"], "argument --test-size: -1: must be >= 0"),
])
def test_cli_refuses_bad_options_with_exit_2(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        cli_main(["prepare", "rsna-pneumonia", "--src", str(tmp_path), "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and match in err and "Traceback" not in err


def test_make_dicom_helper_reads_back(tmp_path):
    """The bad-case builder shared with tests/io: a good file from it is read by prepare like any other."""
    src = make_dataset(tmp_path / "src")
    make_dicom(src / L.TRAIN_DIR / f"{pid(3)}.dcm", image_for([]), view="AP", patient_id=pid(3))
    rep = run(src, tmp_path / "out")
    assert rep["records"] == 8 and records(tmp_path / "out")[pid(3)]["source"]["transfer_syntax"] == \
        "Explicit VR Little Endian"
