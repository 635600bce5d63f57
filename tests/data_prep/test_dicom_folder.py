"""medpipe prepare/synth dicom-folder: keys, label values, files by content, accounting, a test-only datalist."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import dicom_folder as df
from data_prep.dicom_folder import layout as L
from data_prep.dicom_folder.synth import synthesize
from data_prep.rsna_pneumonia import layout as RSNA
from data_prep.rsna_pneumonia.synth import dicom_bytes
from medpipe.cli import main as cli_main
from medpipe.errors import DataError, UserError
from tests.io.test_dicom import _bad_cases

SIZE = 64
#: PatientID -> (label value, [(path under --src, study UID, view, DICOM variant)])
PATIENTS = {
    "P001": ("yes", [("P001/ST1/SE1/IM0001", "1.9.1", "AP", "jpeg")]),
    "P002": ("no", [("P002/ST1/SE1/IM0001.dcm", "1.9.2", "PA", "mono1")]),
    "P003": ("Yes", [("P003/ST1/SE1/IM0001", "1.9.3", "AP", "rescale"),  # two studies of one patient
                     ("P003/ST2/SE1/IM0001", "1.9.4", "PA", "jpeg")]),
    "P004": ("NO", [("P004/ST1/SE1/IM0001", "1.9.5", "PA", "bits10")]),
}
ORPHAN_ROW, ORPHAN_DICOM = "P099", "P050"


def image_for(positive: bool) -> np.ndarray:
    a = np.full((SIZE, SIZE), 60, np.uint8)
    a[:, :6] = 10  # a dark band: MONOCHROME1 mistakes show
    if positive:
        a[20:40, 36:56] = 200
    return a


def sop(rel: str) -> str:
    import zlib

    return f"1.9.9.{zlib.crc32(rel.encode())}"


def write_dicom(root: Path, rel: str, pid: str, study: str, view="PA", variant="jpeg", positive=False) -> None:
    head = {"patient_id": pid, "view": view, "age": "051Y", "sex": "F", "spacing": 2.5, "study": study,
            "series": study + ".1", "instance": sop(rel)}
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(dicom_bytes(image_for(positive), head, variant))


def make_export(root: Path, labels: str | None = None, name: str = "labels.csv") -> Path:
    """The fixture export: nested folders, files without an extension, a README, two orphans."""
    for pid, (value, images) in PATIENTS.items():
        for rel, study, view, variant in images:
            write_dicom(root, rel, pid, study, view, variant, positive=L.label_of(value, ("yes",)) == 1)
    write_dicom(root, f"{ORPHAN_DICOM}/ST1/SE1/IM0001", ORPHAN_DICOM, "1.9.50")
    (root / "README.txt").write_text("export of 5 patients\n")
    if labels is None:
        labels = "PatientID,pneumonia\n" + "".join(f"{p},{v}\n" for p, (v, _) in PATIENTS.items()) + f"{ORPHAN_ROW},no\n"
    (root / name).write_text(labels)
    return root


def run(src, out, **kw):
    workers = kw.pop("workers", 1)
    kw.setdefault("label_column", "pneumonia")
    return df.prepare(src, out, kw, workers=workers, progress=None)


def load(out):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


def by_source(out) -> dict:
    return {r["source"]["path"]: r for r in load(out)[0]["test"]}


@pytest.fixture
def src(tmp_path):
    return make_export(tmp_path / "export")


# ---------------------------------------------------------------------------------------- label values


@pytest.mark.parametrize("value, positives, expected", [
    ("yes", L.DEFAULT_POSITIVE_VALUES, 1), ("YES ", L.DEFAULT_POSITIVE_VALUES, 1), ("Pneumonia", L.DEFAULT_POSITIVE_VALUES, 1),
    ("1.0", L.DEFAULT_POSITIVE_VALUES, 1), ("true", L.DEFAULT_POSITIVE_VALUES, 1), ("no", L.DEFAULT_POSITIVE_VALUES, 0),
    ("0", L.DEFAULT_POSITIVE_VALUES, 0), ("maybe", L.DEFAULT_POSITIVE_VALUES, 0), ("", L.DEFAULT_POSITIVE_VALUES, None),
    ("consolidation", ("pneumonia", "consolidation"), 1), ("yes", ("pneumonia", "consolidation"), 0),
])
def test_label_values(value, positives, expected):
    assert L.label_of(value, positives) == expected


@pytest.mark.parametrize("parser, text, expected", [
    (L.parse_value_list, " Pneumonia, 1.0,YES ,yes", "pneumonia,1,yes"),
    (L.parse_modalities, "cr,DX", "CR,DX"),
    (L.parse_class_names, "normal, pneumonia", "normal,pneumonia"),
])
def test_option_parsers(parser, text, expected):
    assert parser(text) == expected


@pytest.mark.parametrize("parser, text", [(L.parse_value_list, " , "), (L.parse_class_names, "a"),
                                          (L.parse_class_names, "a,a")])
def test_option_parsers_refuse(parser, text):
    with pytest.raises(ValueError):
        parser(text)


# ---------------------------------------------------------------------------------------- prepare


def test_prepare_by_patient_id(src, tmp_path):
    rep = run(src, tmp_path / "out", cache_size=32)
    dl, _ = load(tmp_path / "out")
    assert dl["training"] == [] and dl["num_folds"] == 0 and len(dl["test"]) == 5 and dl["numTest"] == 5
    assert dl["tasks"] == {"label": {"kind": "binary", "class_names": list(RSNA.BINARY_NAMES)}}
    assert rep["folds"] == [] and rep["test_only"] and rep["test"] == {"patients": 4, "records": 5, "positives": 3,
                                                                         "AP": 2, "PA": 3}
    recs = by_source(tmp_path / "out")
    r = recs["P003/ST2/SE1/IM0001"]
    assert {"image", "patient", "label", "view", "age", "sex", "pixel_spacing", "width", "height", "source"} <= set(r)
    assert (r["patient"], r["label"], r["label_value"], r["key"], r["view"], r["age"], r["sex"]) == \
        ("P003", 1, "Yes", "P003", "PA", 51, "F")
    assert (r["width"], r["height"], r["pixel_spacing"], r["stored_pixel_spacing"]) == (32, 32, [2.5, 2.5], [5.0, 5.0])
    s = r["source"]
    assert (s["study_uid"], s["series_uid"], s["sop_uid"], s["patient_id"]) == \
        ("1.9.4", "1.9.4.1", sop("P003/ST2/SE1/IM0001"), "P003")
    assert {p: r["label"] for p, r in recs.items()} == {"P001/ST1/SE1/IM0001": 1, "P002/ST1/SE1/IM0001.dcm": 0,
                                                        "P003/ST1/SE1/IM0001": 1, "P003/ST2/SE1/IM0001": 1,
                                                        "P004/ST1/SE1/IM0001": 0}
    assert sorted(r["image"] for r in recs.values()) == ["images/P001_00.png", "images/P002_00.png",
                                                         "images/P003_00.png", "images/P003_01.png",
                                                         "images/P004_00.png"]
    # MONOCHROME1 is inverted: the dark band stays dark
    with Image.open(tmp_path / "out" / recs["P002/ST1/SE1/IM0001.dcm"]["image"]) as im:
        assert np.asarray(im)[:, :2].mean() < 40 and np.asarray(im)[:, 20:].mean() > 50
    # accounting: 6 DICOMs + README + the table = 8 files; the orphans reported
    assert rep["accounting"] == {"files_seen": 8, "files_in_records": 6, "files_skipped": 2, "adds_up": True,
                                 "ignored_medpipe_files": 0}
    assert rep["inputs"] == {"dicom": 6, "label_table": 1, "other": 1, "total": 8}
    assert {s["path"]: s["kind"] for s in rep["skipped"]} == {"README.txt": "not_dicom",
                                                              f"{ORPHAN_DICOM}/ST1/SE1/IM0001": "no_label_row"}
    assert rep["anomaly_counts"] == {"label_row_without_dicom": 1, "several_dicoms_per_key": 1}
    assert ORPHAN_ROW in next(a["action"] for a in rep["anomalies"] if a["kind"] == "label_row_without_dicom")
    lab = rep["labels"]
    assert (lab["rows"], lab["keys"], lab["keys_in_records"], lab["keys_without_dicom"], lab["adds_up"]) == \
        (5, 5, 4, 1, True)
    assert rep["dicoms"]["dicoms_per_key"] == {1: 4, 2: 1} and rep["view_vs_label"]["table"] == \
        {"AP": {"no_opacity": 0, "lung_opacity": 2}, "PA": {"no_opacity": 2, "lung_opacity": 1}}
    md = (tmp_path / "out/prepare_report.md").read_text()
    for part in ("## Label table", "## View position vs label", "## DICOM headers", "`yes` -> lung_opacity (1)",
                 "every record is in the datalist's `test`", "| test | 4 | 5 | 3 | 2 | 3 |"):
        assert part in md, part
    assert (tmp_path / "out/labels.csv").read_text().splitlines()[0] == \
        "image,patient,fold,label,label_value,key,view,age,sex"
    from monai.data import load_decathlon_datalist

    assert len(load_decathlon_datalist(tmp_path / "out/datalist.json", data_list_key="test")) == 5


def test_records_are_what_evaluate_reads(src, tmp_path):
    """``medpipe evaluate ... --records test`` on it: the test split loads and rsna-pneumonia's labels match."""
    from medpipe.data.datalist import check_datalist, check_same_labels, select_records

    run(src, tmp_path / "out")
    trained = {"task": "binary", "class_names": list(RSNA.label_names("binary"))}
    assert check_same_labels(tmp_path / "out", "label", trained)["class_names"] == trained["class_names"]
    check_datalist(tmp_path / "out", "label")
    recs = select_records(tmp_path / "out", "test", label_key="label")
    assert len(recs) == 5 and all(Path(r["image"]).is_file() for r in recs)
    run(src, tmp_path / "renamed", class_names="normal,pneumonia")
    with pytest.raises(DataError, match=r"was trained on binary"):
        check_same_labels(tmp_path / "renamed", "label", trained)


def _keyed(rows: dict, column: str) -> str:
    return f"{column},pneumonia\n" + "".join(f"{k},{v}\n" for k, v in rows.items())


@pytest.mark.parametrize("key, rows, expected", [
    # one label per study: the two studies of P003 differ
    ("StudyInstanceUID", {"1.9.1": "yes", "1.9.2": "no", "1.9.3": "yes", "1.9.4": "no", "1.9.5": "no"},
     {"P001/ST1/SE1/IM0001": 1, "P002/ST1/SE1/IM0001.dcm": 0, "P003/ST1/SE1/IM0001": 1, "P003/ST2/SE1/IM0001": 0,
      "P004/ST1/SE1/IM0001": 0}),
    ("SOPInstanceUID", {sop("P001/ST1/SE1/IM0001"): "1", sop("P003/ST2/SE1/IM0001"): "0"},
     {"P001/ST1/SE1/IM0001": 1, "P003/ST2/SE1/IM0001": 0}),
    # paths (any slash, ./), a unique file name with its extension
    ("filename", {"P001/ST1/SE1/IM0001": "yes", ".\\P003\\ST2\\SE1\\IM0001": "yes", "IM0001.dcm": "no"},
     {"P001/ST1/SE1/IM0001": 1, "P003/ST2/SE1/IM0001": 1, "P002/ST1/SE1/IM0001.dcm": 0}),
])
def test_keys(tmp_path, key, rows, expected):
    src = make_export(tmp_path / "src", labels=_keyed(rows, key))
    rep = run(src, tmp_path / "out", key=key)
    recs = by_source(tmp_path / "out")
    assert {p: r["label"] for p, r in recs.items()} == expected
    assert all(r["patient"] == r["source"]["patient_id"] for r in recs.values())
    assert rep["accounting"]["adds_up"] and rep["skipped_counts"]["no_label_row"] == 6 - len(expected)
    assert rep["labels"]["key_column"] == key


def test_filename_used_in_several_folders_is_ambiguous(tmp_path):
    src = make_export(tmp_path / "src", labels="File Name,pneumonia\nIM0001,yes\nP002/ST1/SE1/IM0001.dcm,no\n")
    rep = run(src, tmp_path / "out", key="filename")
    assert set(by_source(tmp_path / "out")) == {"P002/ST1/SE1/IM0001.dcm"}
    amb = [s for s in rep["skipped"] if s["kind"] == "ambiguous_key"]
    assert len(amb) == 5 and "5 DICOMs are named IM0001" in amb[0]["reason"] and "path under --src" in amb[0]["reason"]


@pytest.mark.parametrize("key, table, expected", [
    # without a PatientID the key value names the patient
    ("filename", "filename,pneumonia\nP004/ST1/SE1/IM0001,yes\n", ("P004/ST1/SE1/IM0001", None)),
    ("PatientID", None, (None, "no_key")),  # no PatientID element: nothing to join on
])
def test_dicom_without_patient_id(tmp_path, key, table, expected):
    import io

    import pydicom

    src = make_export(tmp_path / "src", labels=table)
    ds = pydicom.dcmread(src / "P004/ST1/SE1/IM0001")
    del ds.PatientID
    buf = io.BytesIO()
    ds.save_as(buf)
    (src / "P004/ST1/SE1/IM0001").write_bytes(buf.getvalue())
    rep = run(src, tmp_path / "out", key=key)
    rec = by_source(tmp_path / "out").get("P004/ST1/SE1/IM0001")
    skipped = {s["path"]: s["kind"] for s in rep["skipped"]}
    assert (rec and rec["patient"], skipped.get("P004/ST1/SE1/IM0001")) == expected
    assert rep["accounting"]["adds_up"]


def test_a_copied_sop_instance_is_a_duplicate(tmp_path):
    src = make_export(tmp_path / "src", labels=_keyed({sop("P001/ST1/SE1/IM0001"): "yes"}, "SOPInstanceUID"))
    (src / "copy").mkdir()
    (src / "copy/IM0001").write_bytes((src / "P001/ST1/SE1/IM0001").read_bytes())
    rep = run(src, tmp_path / "out", key="SOPInstanceUID")
    assert rep["records"] == 1 and rep["skipped_counts"]["duplicate"] == 1
    assert "kept P001/ST1/SE1/IM0001" in next(s["reason"] for s in rep["skipped"] if s["kind"] == "duplicate")


def test_label_table_quirks(tmp_path):
    """;-separated Windows-1252 table: repeated rows, conflicting rows, an empty label, a row without a key."""
    table = ("Patient ID;Pneumonia;Commentaire\n"
             "P001;yes;\nP001;YES;répété\n"  # the same label twice: kept once
             "P002;yes;\nP002;no;\n"  # conflict: P002's DICOM skipped, the lines named
             "P003;;\n"  # empty: P003's DICOMs skipped
             ";yes;\n"  # no key
             "P004;pneumonia;\n")
    src = make_export(tmp_path / "src", labels="")
    (src / "labels.csv").write_bytes(table.encode("cp1252"))
    rep = run(src, tmp_path / "out", label_column="Pneumonia")
    assert {p: r["label"] for p, r in by_source(tmp_path / "out").items()} == {"P001/ST1/SE1/IM0001": 1,
                                                                               "P004/ST1/SE1/IM0001": 1}
    kinds = {s["path"]: s["kind"] for s in rep["skipped"]}
    assert kinds["P002/ST1/SE1/IM0001.dcm"] == "conflicting_labels" and kinds["P003/ST2/SE1/IM0001"] == "empty_label"
    conflict = next(a for a in rep["anomalies"] if a["kind"] == "conflicting_labels")
    assert "lines 4 ('yes'), 5 ('no')" in conflict["action"] and "P002" in conflict["action"]
    assert {"duplicate_label_rows", "empty_label", "labels_rows_without_key", "labels_encoding"} <= \
        set(rep["anomaly_counts"])
    lab = rep["labels"]
    assert (lab["delimiter"], lab["encoding"], lab["rows"], lab["adds_up"]) == (";", "windows-1252", 7, True)
    assert lab["keys_unusable"] == {"conflicting_labels": 1, "empty_label": 1}
    with pytest.raises(DataError, match=r"--strict: .*conflicting_labels"):
        run(src, tmp_path / "strict", label_column="Pneumonia", strict=True)


def test_files_are_dicoms_by_content_and_every_file_is_counted(src, tmp_path):
    cases = _bad_cases(tmp_path)
    for k, (_name, data, _cls, _kind) in enumerate(cases):  # named like DICOMs, so a non-DICOM is a damaged one
        (src / f"bad/ST1/IM{k:04d}.dcm").parent.mkdir(parents=True, exist_ok=True)
        (src / f"bad/ST1/IM{k:04d}.dcm").write_bytes(data)
    nopre = (src / "P001/ST1/SE1/IM0001").read_bytes()[132:]  # no preamble, no extension: still a DICOM
    (src / "P001/ST1/SE2").mkdir()
    (src / "P001/ST1/SE2/IM0002").write_bytes(nopre)
    (src / "notes.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4)
    (src / "DICOMDIR").write_bytes((src / "P004/ST1/SE1/IM0001").read_bytes())  # an index by name
    labels = (src / "labels.csv").read_text() + "p1,yes\n"  # the bad cases' PatientID
    (src / "labels.csv").write_text(labels)
    rep = run(src, tmp_path / "out")
    assert "P001/ST1/SE2/IM0002" in by_source(tmp_path / "out")
    bad = Counter(s["kind"] for s in rep["skipped"] if s["path"].startswith("bad/"))
    assert bad == Counter(kind for *_x, kind in cases)
    kinds = {s["path"]: s["kind"] for s in rep["skipped"] if not s["path"].startswith("bad/")}
    assert kinds == {"README.txt": "not_dicom", "notes.pdf": "not_dicom", "DICOMDIR": "dicomdir",
                     f"{ORPHAN_DICOM}/ST1/SE1/IM0001": "no_label_row"}
    a = rep["accounting"]
    assert a["adds_up"] and a["files_seen"] == 8 + len(cases) + 3 and a["files_in_records"] == 7
    md = (tmp_path / "out/prepare_report.md").read_text()
    assert "DICOM cut short" in md and "file that is not a DICOM (by content)" in md


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("setup, argv, match", [
    ("no_csv", [], r"no label table found: no \*.csv among its 7 files.*--labels PATH"),
    ("two_csv", [], r"2 CSV files could be the label table \(labels.csv, old/labels.csv\).*--labels"),
    ("", ["--key", "StudyInstanceUID"], r"labels.csv: no key column for --key StudyInstanceUID.*its columns are "
                                        r"'PatientID', 'pneumonia'.*--key-column NAME"),
    ("", ["--label-column", "label"], r"no label column 'label' \(--label-column\); its columns are 'PatientID', "
                                      r"'pneumonia'. Did you mean --label-column pneumonia\?"),
    ("", ["--labels", "nowhere.csv"], r"--labels nowhere.csv: no such file"),
    ("", ["--folds", "3"], r"--folds 3: dicom-folder is a test-only dataset"),
    ("", ["--test-fraction", "0.2"], r"--test-fraction 0.2: dicom-folder is a test-only dataset"),
])
def test_user_errors_are_one_paragraph(src, tmp_path, capsys, setup, argv, match):
    if setup == "no_csv":
        (src / "labels.csv").unlink()
    if setup == "two_csv":
        (src / "old").mkdir()
        (src / "old/labels.csv").write_text("PatientID,pneumonia\n")
    argv = argv if "--label-column" in argv else ["--label-column", "pneumonia", *argv]
    rc = cli_main(["prepare", "dicom-folder", "--src", str(src), "--out", str(tmp_path / "o"), "--workers", "1", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert re.search(match, " ".join(err.split())), err
    assert not (tmp_path / "o").exists()


def test_labels_outside_src_rerun_and_change(src, tmp_path, capsys):
    ext = tmp_path / "reads.csv"
    ext.write_text((src / "labels.csv").read_text())
    (src / "labels.csv").unlink()
    (src / "other.csv").write_text("a,b\n")  # a CSV under --src that is not the table: skipped, counted
    argv = ["prepare", "dicom-folder", "--src", str(src), "--out", str(tmp_path / "o"), "--labels", str(ext),
            "--label-column", "pneumonia", "--workers", "1"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "records: 5 from 4 patients" in out and "test only (no training folds): 4p/5r/3+" in out
    rep = load(tmp_path / "o")[1]
    assert rep["skipped_counts"] == {"not_dicom": 1, "no_label_row": 1, "unused_table": 1}
    assert rep["accounting"]["adds_up"] and rep["accounting"]["files_in_records"] == 5
    assert cli_main(argv) == 0 and "up to date" in capsys.readouterr().out
    ext.write_text(ext.read_text().replace("P004,NO", "P004,yes"))  # the table changed: rebuilt
    assert cli_main(argv) == 0 and "up to date" not in capsys.readouterr().out
    assert by_source(tmp_path / "o")["P004/ST1/SE1/IM0001"]["label"] == 1


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        cli_main(["prepare", "dicom-folder", "--help"])
    text = capsys.readouterr().out
    for o in df.DATASET.options:
        assert o.flag in text.split("examples:")[0], o.flag
    assert "examples:" in text and "medpipe evaluate cxr_pneumonia" in text and "--records test" in text


# ---------------------------------------------------------------------------------------- synth


def test_synth_export_prepares_with_its_quirks(tmp_path, capsys):
    s = synthesize(tmp_path / "raw", patients=6, size=64, seed=3)
    assert synthesize(tmp_path / "raw", patients=6, size=64, seed=3) == s  # made once
    files = sorted(p.relative_to(tmp_path / "raw").as_posix() for p in (tmp_path / "raw").rglob("*") if p.is_file())
    assert "README.txt" in files and "labels.csv" in files
    dcm = [f for f in files if f.startswith("DICOM/")]
    assert any(not f.endswith(".dcm") for f in dcm) and any(f.endswith(".dcm") for f in dcm)
    assert all(f.count("/") == 4 for f in dcm)  # DICOM/<patient>/<study>/<series>/IMnnnn
    assert (tmp_path / "raw" / s["no_preamble"]).read_bytes()[128:132] != b"DICM"
    assert s["positives"] >= 1 and s["variants"].get("mono1", 0) >= 1 and s["images"] == 6 + len(s["two_images"])
    rc = cli_main(["prepare", "dicom-folder", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                   "--label-column", "pneumonia", "--cache-size", "32", "--workers", "1"])
    assert rc == 0
    dl, rep = load(tmp_path / "out")
    assert rep["records"] == s["images"] and rep["patients"] == 6 and rep["positive_patients"] == s["positives"]
    assert {r["patient"] for r in dl["test"]} == set(s["patients"]) and dl["training"] == []
    assert rep["skipped_counts"] == {"not_dicom": 1, "no_label_row": 1}
    assert next(x for x in rep["skipped"] if x["kind"] == "no_label_row")["path"] == s["dicom_without_label_row"]["file"]
    assert s["label_row_without_dicom"] in next(a["action"] for a in rep["anomalies"]
                                                if a["kind"] == "label_row_without_dicom")
    assert rep["dicom"]["inverted_monochrome1"] == s["variants"]["mono1"] and rep["accounting"]["adds_up"]
    assert all(r["source"]["accession"] and r["source"]["study_date"] for r in dl["test"])
    twice = [p for p, n in Counter(r["patient"] for r in dl["test"]).items() if n == 2]
    assert sorted(twice) == sorted(s["two_images"])


def test_synth_site_look_keeps_the_opacity_brighter():
    """The external site's gray response is monotonic (what is brighter stays brighter) over a narrower range."""
    from data_prep.dicom_folder.synth import site_look

    lut = site_look(np.arange(256, dtype=np.uint8)[None])[0].astype(int)
    assert (np.diff(lut) >= 0).all() and (lut[0], lut[-1]) == (14, 236) and lut[128] < 128  # darker mid-tones
    assert len(set(lut.tolist())) > 200  # few gray levels merged


@pytest.mark.parametrize("kw, match", [({"patients": 3}, "--patients 3"), ({"size": 32}, "--size 32")])
def test_synth_refuses_bad_arguments(tmp_path, kw, match):
    with pytest.raises(UserError, match=match):
        synthesize(tmp_path / "x", **kw)
