"""medpipe prepare/synth cq500: reads and majority, reader agreement, series choice, accounting, test-only datalist."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import cq500
from data_prep.cq500 import layout as L
from data_prep.cq500 import tables as T
from data_prep.cq500.synth import synthesize
from data_prep.rsna_ich.layout import SUBTYPES
from medpipe.cli import main as cli_main
from medpipe.errors import DataError, UserError
from medpipe.prepare.converter import Converter
from tests.conftest import REPO

REAL_READS = REPO.parent / "shared" / "data" / "CQ500" / "reads.csv"
RECORD_KEYS = {"image", "patient", "scan", "labels", "reader_labels", "slice_index", "z", "neighbors",
               "series_description", "series_uid", "slice_thickness", "width", "height", "source"}
SCAN_KEYS = {"scan", "patient", "category", "labels", "readers", "findings", "series", "series_uid", "slice_thickness",
             "slices", "other_series"}
#: whether the prepare engine writes a datalist without image records for a converter that allows it
ENGINE_ALLOWS_NO_RECORDS = hasattr(Converter, "allow_no_records")


def run(src, out, **kw):
    workers = kw.pop("workers", 1)
    return cq500.prepare(src, out, kw, workers=workers, progress=None)


def load(out):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


def pandas_majority(path) -> tuple[object, dict]:
    """The reads file and each finding's majority, computed with pandas (independently of medpipe)."""
    import pandas as pd

    d = pd.read_csv(path).set_index("name")
    return d, {f: (sum(d[f"{r}:{f}"] for r in L.READERS) >= 2).astype(int) for f in L.FINDINGS}


@pytest.fixture(scope="module")
def synth_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("cq500")
    return synthesize(root / "raw", patients=6, size=32, seed=5), root


@pytest.fixture(scope="module")
def prepared(synth_src):
    s, root = synth_src
    rep = run(Path(s["out"]), root / "out")
    return s, root / "out", rep


# ---------------------------------------------------------------------------------------- layout


@pytest.mark.parametrize("rel, expected", [
    ("CQ500CT12 CQ500CT12/Unknown Study/CT Plain/CT000000.dcm", (12, "CQ500CT12 CQ500CT12")),
    ("dl/CQ500-CT-7/Unknown Study/CT 5mm/CT000000.dcm", (7, "dl/CQ500-CT-7")),
    ("CQ500CT3/CT000000.dcm", (3, "CQ500CT3")),
    ("CQ500CT3 CQ500CT3.zip", None), ("reads.csv", None), ("notes/CQ500 readme.txt", None),
])
def test_scan_of_path(rel, expected):
    assert L.scan_of_path(rel) == expected


def test_label_mapping_is_in_rsna_ich_order():
    assert L.SUBTYPES == SUBTYPES and L.SUBTYPE_FINDINGS == ("ICH", "EDH", "IPH", "IVH", "SAH", "SDH")
    assert L.to_subtypes({"ICH": 1, "EDH": 0, "IPH": 1, "IVH": 0, "SAH": 0, "SDH": 1}) == [1, 0, 1, 0, 0, 1]
    assert set(L.OTHER_FINDINGS) | set(L.TO_SUBTYPE) == set(L.FINDINGS) and len(L.COLUMNS) == 44


def _series(desc, thickness, slices, kernel="STANDARD", uid=None, modality="CT"):
    return {"uid": uid or desc, "description": desc, "kernel": kernel, "modality": modality, "thickness": thickness,
            "slices": slices}


@pytest.mark.parametrize("series, target, chosen, reasons", [
    # the bone kernel is excluded even when the description says nothing; the thin one is farther from 5
    ([_series("CT PLAIN THIN", 0.625, 250), _series("CT 5mm SHARP", 5.0, 32, "BONE"), _series("CT Plain", 5.0, 32)],
     5.0, "CT Plain", {"CT PLAIN THIN": "not chosen", "CT 5mm SHARP": "excluded: bone"}),
    ([_series("CT PLAIN THIN", 0.625, 250), _series("CT Plain", 5.0, 32)], 0.625, "CT PLAIN THIN",
     {"CT Plain": "not chosen"}),
    ([_series("CT POST CONTRAST", 5.0, 30), _series("CT PRE CONTRAST 5MM STD", 5.0, 30), _series("Scout", 5.0, 2)],
     5.0, "CT PRE CONTRAST 5MM STD", {"CT POST CONTRAST": "excluded: post contrast", "Scout": "excluded: localizer"}),
    # ties on thickness: more slices, then the name
    ([_series("CT B", 5.0, 30), _series("CT A", 5.0, 30), _series("CT C", 5.0, 31)], 5.0, "CT C",
     {"CT A": "not chosen", "CT B": "not chosen"}),
    ([_series("CT 4cm", 4.0, 4), _series("SAG MPR", 5.0, 40), _series("CT 5mm", 5.0, 30, modality="MR")], 5.0, None,
     {"CT 4cm": "excluded: fewer than 5", "SAG MPR": "excluded: reformat", "CT 5mm": "excluded: modality MR"}),
    ([_series("CT x", None, 30), _series("CT y", 2.5, 20)], 5.0, "CT y", {"CT x": "not chosen: unknown"}),
])
def test_choose_series(series, target, chosen, reasons):
    got, others = L.choose_series(series, target)
    assert (got and got["description"]) == chosen
    assert {o["description"]: why for o, why, _ in others}.keys() == reasons.keys()
    for o, why, excluded in others:
        assert why.startswith(reasons[o["description"]]) and excluded == why.startswith("excluded")


# ---------------------------------------------------------------------------------------- the reads


@pytest.mark.skipif(not REAL_READS.is_file(), reason=f"the real CQ500 reads file is not here ({REAL_READS})")
def test_real_reads_majority_and_agreement():
    from medpipe.metrics.agreement import reader_agreement

    table = T.read_reads(REAL_READS, "reads.csv")
    assert len(table.scans) == 491 and table.info["rows"] == 491 and table.info["categories"] == {"B1": 214, "B2": 277}
    assert set(table.problems) == {"subtype_without_ich"} and table.problems["subtype_without_ich"]["count"] == 2
    d, maj = pandas_majority(REAL_READS)
    for name, scan in table.scans.items():
        m = T.majority_findings(scan)
        assert m == {f: int(maj[f][name]) for f in L.FINDINGS}, name
        assert L.to_subtypes(m) == [int(maj[f][name]) for f in L.SUBTYPE_FINDINGS]
    readers = {r: [[s.reads[r][f] for f in L.FINDINGS] for s in table.scans.values()] for r in L.READERS}
    ag = reader_agreement(readers, L.FINDINGS)
    for f in L.FINDINGS:
        assert ag[f]["majority_positive"] == int(maj[f].sum()), f
        assert ag[f]["positive"] == {r: int(d[f"{r}:{f}"].sum()) for r in L.READERS}, f
        assert ag[f]["fleiss_kappa"] is not None and -1 <= ag[f]["fleiss_kappa"] <= 1
    assert ag["ICH"]["majority_positive"] == 205 and round(ag["ICH"]["fleiss_kappa"], 3) == 0.783


def _reads_text(rows: list[list[str]]) -> str:
    return "\n".join([",".join(L.COLUMNS)] + [",".join(r) for r in rows]) + "\n"


def _row(name, category="B1", value="0", **set_) -> list[str]:
    cells = {c: value for c in L.COLUMNS[2:]}
    cells.update({k.replace("_", ":", 1): v for k, v in set_.items()})
    return [name, category] + [cells[c] for c in L.COLUMNS[2:]]


def test_reads_quirks(tmp_path):
    rows = [_row("CQ500-CT-1", R1_ICH="1", R2_ICH="1"),
            _row("CQ500-CT-2"), _row("CQ500-CT-2"),                           # repeated: used once
            _row("CQ500-CT-3"), _row("CQ500-CT-3", R3_SDH="1", R3_ICH="1"),   # conflicting: unusable
            _row("CQ500-CT-4", R2_EDH="yes"),                                 # bad value: unusable
            _row("CT-5"),                                                     # bad name
            _row("CQ500-CT-6", R1_SAH="1.0", R1_ICH="1.0")]                   # 1.0 reads as 1
    (tmp_path / "reads.csv").write_text(_reads_text(rows))
    t = T.read_reads(tmp_path / "reads.csv", "reads.csv")
    assert list(t.scans) == ["CQ500-CT-1", "CQ500-CT-2", "CQ500-CT-6"]
    assert {k: v["count"] for k, v in t.problems.items()} == {"bad_value": 1, "bad_name": 1, "repeated_row": 1,
                                                              "conflicting_rows": 1}
    assert "R2:EDH = 'yes'" in t.problems["bad_value"]["examples"][0]
    assert "lines 5, 6 with different reads" in t.problems["conflicting_rows"]["examples"][0]
    assert (t.info["rows"], t.info["rows_used"], t.info["rows_unusable"]) == (8, 4, 4)
    assert T.majority_findings(t.scans["CQ500-CT-1"])["ICH"] == 1
    assert T.majority_findings(t.scans["CQ500-CT-6"])["ICH"] == 0
    assert T.reader_subtypes(t.scans["CQ500-CT-6"])["R1"] == [1, 0, 0, 0, 1, 0]


def test_reads_without_the_columns_is_one_paragraph(tmp_path):
    (tmp_path / "reads.csv").write_text("name,Category,ICH\nCQ500-CT-1,B1,1\n")
    with pytest.raises(DataError, match=r"not CQ500's reads file: 42 of its 44 columns are missing \(R1:ICH, R1:IPH"):
        T.read_reads(tmp_path / "reads.csv", "reads.csv")


# ---------------------------------------------------------------------------------------- synth -> prepare


def test_synth_then_prepare(prepared):
    s, out, rep = prepared
    dl, rep2 = load(out)
    assert rep2["records"] == rep["records"]
    # accounting: every file used or skipped; the orphans and the truncated slice reported
    assert rep["accounting"]["adds_up"] and rep["accounting"]["files_seen"] == s["files"]
    assert rep["accounting"]["files_in_records"] == s["chosen_slices"] - 1 + 1  # minus the cut slice, plus reads.csv
    counts = rep["skipped_counts"]
    excluded = sum(d in ("CT BONE", "CT 5mm SHARP", "CT POST CONTRAST") for ds in s["scan_series"].values() for d in ds)
    assert counts == {"no_reads_row": 1, "series_excluded": excluded, "series_not_chosen": 6, "truncated_dicom": 1}
    orphan = next(x for x in rep["skipped"] if x["kind"] == "no_reads_row")
    assert orphan["path"].startswith("CQ500CT") and L.scan_name(L.folder_scan(orphan["path"])) == \
        s["folder_without_reads_row"] and orphan["files"] > 0
    assert next(x for x in rep["skipped"] if x["kind"] == "truncated_dicom")["path"] == s["truncated"]
    assert s["reads_row_without_images"] in next(a["action"] for a in rep["anomalies"]
                                                  if a["kind"] == "scan_without_images")
    # a test-only datalist with scan labels
    assert dl["training"] == [] and dl["num_folds"] == 0 and dl["numTest"] == len(dl["test"]) == rep["records"]
    assert dl["label_level"] == "scan" and dl["tasks"] == {"labels": {"kind": "multilabel",
                                                                      "class_names": list(SUBTYPES)}}
    assert dl["input"]["channels"] == 3 and dl["input"]["window_channels"] == ["brain", "subdural", "soft_tissue"]
    assert dl["input"]["windows"]["brain"] == [40.0, 80.0] and dl["synthetic"]
    # the chosen series is the plain 5 mm one of every scan
    recs = dl["test"]
    by_scan = {}
    for r in recs:
        assert RECORD_KEYS <= set(r), set(RECORD_KEYS) - set(r)
        by_scan.setdefault(r["scan"], []).append(r)
    assert set(by_scan) == set(s["scans"])
    assert {k: v[0]["series_description"] for k, v in by_scan.items()} == s["chosen_series"]
    assert {r["slice_thickness"] for r in recs} == {5.0} and rep["series"]["chosen_thickness"] == {"5 mm": 6}
    # labels: the majority of the readers, mapped to the subtypes (computed here with pandas)
    d, maj = pandas_majority(Path(s["out"]) / "reads.csv")
    for scan, rs in by_scan.items():
        want = [int(maj[f][scan]) for f in L.SUBTYPE_FINDINGS]
        readers = {r: [int(d.loc[scan, f"{r}:{f}"]) for f in L.SUBTYPE_FINDINGS] for r in L.READERS}
        assert all(r["labels"] == want and r["reader_labels"] == readers and r["patient"] == scan for r in rs)
        # ordered along z; neighbours are the adjacent stored slices (the slice itself at the ends)
        zs = [r["z"] for r in rs]
        assert zs == sorted(zs) and [r["slice_index"] for r in rs] == sorted(r["slice_index"] for r in rs)
        images = [r["image"] for r in rs]
        assert all(i.startswith(f"images/{scan}/") for i in images)
        for j, r in enumerate(rs):
            assert r["neighbors"] == [images[max(j - 1, 0)], images[min(j + 1, len(rs) - 1)]]
    cut = next(k for k, v in by_scan.items() if len(v) != len({r["slice_index"] for r in v}) or
               max(r["slice_index"] for r in v) + 1 != len(v))
    assert s["truncated"].startswith(f"CQ500CT{L.scan_number(cut)} ")
    with Image.open(out / recs[0]["image"]) as im:
        assert im.mode == "RGB" and im.size == (32, 32)
        a = np.asarray(im)
        assert a[..., 0].std() > 0 and not (a[..., 0] == a[..., 2]).all()  # three different windows
    # the scans table: one entry per usable reads row, the orphan row without images
    scans = {x["scan"]: x for x in dl["scans"]}
    assert set(scans) == set(s["scans"]) | {s["reads_row_without_images"]}
    assert all(SCAN_KEYS <= set(x) for x in scans.values())
    for scan, x in scans.items():
        assert x["labels"] == [int(maj[f][scan]) for f in L.SUBTYPE_FINDINGS]
        assert x["findings"] == {f: int(maj[f][scan]) for f in L.OTHER_FINDINGS}
        assert x["slices"] == len(by_scan.get(scan, []))
        assert x["readers"] == {r: [int(d.loc[scan, f"{r}:{f}"]) for f in L.SUBTYPE_FINDINGS] for r in L.READERS}
    lone = scans[s["reads_row_without_images"]]
    assert (lone["series"], lone["slices"], lone["other_series"]) == (None, 0, [])
    some = scans[s["scans"][0]]
    assert some["series"] == s["chosen_series"][s["scans"][0]] and len(some["other_series"]) >= 2
    # the report: agreement per finding with each reader's count, labels per subtype
    ag = rep["agreement"]
    assert list(ag) == list(L.FINDINGS)
    assert ag["ICH"]["positive"] == {r: int(d[f"{r}:ICH"].sum()) for r in L.READERS}
    assert ag["ICH"]["majority_positive"] == int(maj["ICH"].sum()) == rep["labels"]["any"]["positive_scans"]
    assert list(ag["ICH"]["cohen_kappa"]) == ["R1-R2", "R1-R3", "R2-R3"]
    assert rep["scans"] == {"in_reads": 7, "folders": 7, "with_images": 6, "without_images": 1,
                            "folders_without_row": 1, "planned": 6, "without_usable_series": 0, "with_records": 6,
                            "adds_up": True}
    md = (out / "prepare_report.md").read_text()
    for part in ("## Reader agreement", "| ICH |", "Fleiss κ", "κ R1-R2", "## Series choice", "## Labels",
                 "labels are per scan", "excluded: bone"):
        assert part in md, part
    from monai.data import load_decathlon_datalist

    assert len(load_decathlon_datalist(out / "datalist.json", data_list_key="test")) == len(recs)


def test_records_are_what_evaluate_reads(prepared):
    """``medpipe evaluate ... --records test`` on it: rsna-ich's labels match, neighbours become 2.5-D inputs."""
    from data_prep.rsna_ich import DATASET as RSNA_ICH
    from medpipe.data.datalist import check_datalist, check_same_labels, select_records

    _s, out, rep = prepared
    trained = RSNA_ICH.header()["tasks"]["labels"]
    assert check_same_labels(out, "labels", {"task": trained["kind"], **trained})["class_names"] == list(SUBTYPES)
    check_datalist(out, "labels")
    recs = select_records(out, "test", label_key="labels")
    assert len(recs) == rep["records"] and all(Path(r["image_prev"]).is_file() for r in recs)


def test_prepare_is_up_to_date_and_thin_series_on_request(prepared, tmp_path, capsys):
    s, out, _ = prepared
    argv = ["prepare", "cq500", "--src", s["out"], "--out", str(out), "--workers", "1"]
    assert cli_main(argv) == 0 and "up to date" in capsys.readouterr().out
    rep = run(Path(s["out"]), tmp_path / "thin", slice_thickness=0.625)
    dl, _ = load(tmp_path / "thin")
    assert {r["slice_thickness"] for r in dl["test"]} == {0.625}
    assert set(rep["series"]["chosen"]) <= {"CT PLAIN THIN", "CT 0.625mm", "CT Thin Plain"}
    assert rep["skipped_counts"]["series_not_chosen"] == 6 and "truncated_dicom" not in rep["skipped_counts"]


def test_the_prepared_reads_alone_without_the_engine(synth_src, tmp_path):
    """The converter's side of a reads-only run: the scans table, the agreement and the 'no image records' note."""
    s, _root = synth_src
    (tmp_path / "src").mkdir()
    (tmp_path / "src/reads.csv").write_bytes((Path(s["out"]) / "reads.csv").read_bytes())
    conv = cq500.DATASET.load_converter()(cq500.DATASET, cq500.DATASET.resolve_options({}))
    plan = conv.plan(tmp_path / "src", [("reads.csv", 1, 1)], {})
    assert plan.units == [] and plan.skipped == [] and "no image records" in plan.description
    assert conv.finish([], tmp_path / "src", {}).used == 1
    rep = conv.report([])
    assert rep["image_records"] == 0 and "no image records were written" in rep["no_image_records"]
    assert len(conv.datalist_extra()["scans"]) == 7 and all(x["slices"] == 0 for x in conv.datalist_extra()["scans"])
    assert rep["agreement"]["ICH"]["n"] == 7
    assert "No image folder with a reads row" in "\n".join(conv.report_md({**rep, "options": conv.options}))


@pytest.mark.skipif(not ENGINE_ALLOWS_NO_RECORDS,
                    reason="medpipe.prepare.engine refuses a run without records; it needs Converter.allow_no_records")
def test_prepare_the_reads_alone(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    if REAL_READS.is_file():
        (src / "reads.csv").write_bytes(REAL_READS.read_bytes())
        n = 491
    else:
        (src / "reads.csv").write_text(_reads_text([_row(f"CQ500-CT-{i}", R1_ICH=str(i % 2), R2_ICH=str(i % 2),
                                                        R1_IPH=str(i % 2)) for i in range(9)]))
        n = 9
    assert cli_main(["prepare", "cq500", "--src", str(src), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert "no image records were written" in capsys.readouterr().out
    dl, rep = load(tmp_path / "out")
    assert dl["numTest"] == 0 and "test" not in dl and dl["training"] == [] and len(dl["scans"]) == n
    assert rep["records"] == 0 and rep["accounting"]["adds_up"] and rep["agreement"]["ICH"]["n"] == n
    md = (tmp_path / "out/prepare_report.md").read_text()
    assert "no image records were written" in md and "## Reader agreement" in md


# ---------------------------------------------------------------------------------------- every file counted


def _scan_folder(root: Path, n: int, series: list[tuple[str, float, int, str]], size: int = 16) -> list[Path]:
    from medpipe.io.ct_dicom import write_ct_series

    paths = []
    for k, (desc, mm, slices, kernel) in enumerate(series):
        hu = np.full((slices, size, size), 30.0, np.float32)
        rows = write_ct_series(root / f"CQ500CT{n} CQ500CT{n}" / "Unknown Study" / desc, hu, patient_id=L.scan_name(n),
                               study_uid=f"1.9.{n}", series_uid=f"1.9.{n}.{k}", spacing=(mm, 1.0, 1.0),
                               series_description=desc, kernel=kernel,
                               file_names=[f"CT{j:06d}.dcm" for j in range(slices)])
        paths += [Path(r["path"]) for r in rows]
    return paths


def test_every_file_is_counted(tmp_path):
    src = tmp_path / "src"
    a = _scan_folder(src, 1, [("CT Plain", 5.0, 6, "STANDARD"), ("CT 4cm", 5.0, 3, "STANDARD")])
    _scan_folder(src, 2, [("CT BONE", 5.0, 6, "BONE")])  # nothing but a bone series: no usable series
    (src / "reads.csv").write_text(_reads_text([_row("CQ500-CT-1", R1_ICH="1", R2_ICH="1", R1_IPH="1", R2_IPH="1"),
                                                _row("CQ500-CT-2")]))
    (src / "CQ500-CT-1.zip").write_bytes(b"PK\x03\x04")
    (src / "notes.txt").write_text("not a scan\n")
    (src / "other.csv").write_text("a,b\n")
    plain = a[0].parent
    (plain / "Thumbs.db").write_bytes(b"\x00" * 64)  # a stray file among the slices
    copy = src / "CQ500CT1 CQ500CT1" / "copy"
    copy.mkdir()
    (copy / "CT000000.dcm").write_bytes(a[0].read_bytes())  # the same slice again
    rep = run(src, tmp_path / "out")
    kinds = Counter()
    for x in rep["skipped"]:
        kinds[x["kind"]] += x.get("files", 1)
    assert kinds == {"zip_archive": 1, "not_scan_file": 1, "unused_table": 1, "not_dicom": 1, "duplicate": 1,
                     "series_excluded": 3 + 6}
    assert rep["accounting"]["adds_up"] and rep["accounting"]["files_in_records"] == 6 + 1
    assert rep["records"] == 6 and rep["anomaly_counts"] == {"no_usable_series": 1}
    dl, _ = load(tmp_path / "out")
    assert {r["labels"][0] for r in dl["test"]} == {1} and dl["test"][0]["labels"] == [1, 0, 1, 0, 0, 0]
    assert {x["scan"]: x["slices"] for x in dl["scans"]} == {"CQ500-CT-1": 6, "CQ500-CT-2": 0}


# ---------------------------------------------------------------------------------------- errors and help


@pytest.mark.parametrize("setup, argv, match", [
    ("no_reads", [], r"no reads.csv among its \d+ files.*--reads FILE"),
    ("two_reads", [], r"2 files named reads.csv \(old/reads.csv, reads.csv\).*--reads"),
    ("", ["--reads", "nowhere.csv"], r"--reads nowhere.csv: no such file"),
    ("", ["--folds", "3"], r"--folds 3: cq500 is a test-only dataset"),
])
def test_user_errors_are_one_paragraph(synth_src, tmp_path, capsys, setup, argv, match):
    s, _root = synth_src
    src = tmp_path / "src"
    _scan_folder(src, 1, [("CT Plain", 5.0, 5, "STANDARD")], size=8)
    if setup != "no_reads":
        (src / "reads.csv").write_bytes((Path(s["out"]) / "reads.csv").read_bytes())
    if setup == "two_reads":
        (src / "old").mkdir()
        (src / "old/reads.csv").write_text("name\n")
    rc = cli_main(["prepare", "cq500", "--src", str(src), "--out", str(tmp_path / "o"), "--workers", "1", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert re.search(match, " ".join(err.split())), err
    assert not (tmp_path / "o").exists()


def test_bad_slice_thickness_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["prepare", "cq500", "--src", str(tmp_path), "--out", str(tmp_path / "o"), "--slice-thickness", "0"])
    assert e.value.code == 2 and "--slice-thickness: '0': expected a slice thickness in mm" in capsys.readouterr().err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        cli_main(["prepare", "cq500", "--help"])
    text = capsys.readouterr().out
    for o in cq500.DATASET.options:
        assert o.flag in text.split("examples:")[0], o.flag
    assert "examples:" in text and "--records test" in text and "--slice-thickness" in text


def test_synth_is_made_once_and_refuses_bad_arguments(synth_src, tmp_path):
    s, _root = synth_src
    assert synthesize(s["out"], patients=6, size=32, seed=5) == s
    assert len(s["truth"]) == 6 and all(set(t) == set(L.FINDINGS) for t in s["truth"].values())
    for kw, match in (({"patients": 3}, "--patients 3"), ({"size": 16}, "--size 16")):
        with pytest.raises(UserError, match=match):
            synthesize(tmp_path / "x", **kw)
