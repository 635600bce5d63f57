"""medpipe prepare / synth rsna-ich: the label file's quirks, DICOM quirks, series order, neighbours, splits, CLI."""

from __future__ import annotations

import json
import re
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import get_spec, rsna_ich
from data_prep.rsna_ich import layout as L
from data_prep.rsna_ich import tables as T
from data_prep.rsna_ich.phantom import head_volume
from data_prep.rsna_ich.synth import synthesize
from medpipe.cli import main as cli_main
from medpipe.errors import DataError, UserError
from medpipe.io.ct_dicom import CT_WINDOWS, window_channels, write_ct_series

RECORD_KEYS = {"image", "id", "patient", "labels", "study", "series", "scan", "slice_index", "z", "neighbors",
               "width", "height", "source", "fold"}
SYNTH_ARGS = dict(patients=10, size=48, seed=0)


def image_id(i: int) -> str:
    return f"ID_{i:09x}"


def label_lines(image: str, labels) -> list[str]:
    """The six rows of one image in the real file's order (``any`` last)."""
    by = dict(zip(L.SUBTYPES, labels))
    return [f"{image}_{s},{by[s]}" for s in (*L.SUBTYPES[1:], "any")]


def run(src, out, **kw):
    workers = kw.pop("workers", 1)
    kw.setdefault("folds", 2)
    return rsna_ich.prepare(src, out, kw, workers=workers, progress=None)


def load(out):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


# ---------------------------------------------------------------------------------------- the label file


def test_label_file_pivot_duplicates_and_conflicts(tmp_path):
    a, b, c, d, e = (image_id(i) for i in range(1, 6))
    lines = ["ID,Label", *label_lines(a, [1, 0, 0, 0, 0, 1]), *label_lines(b, [0] * 6),
             *label_lines(a, [1, 0, 0, 0, 0, 1]),  # the whole image repeated: 6 identical rows
             f"{b}_subdural,1",  # conflicts with b's 0: the positive wins
             *label_lines(c, [0, 1, 0, 0, 0, 0]),  # any 0 but epidural 1: kept, reported
             f"{d}_any,1", f"{d}_intraparenchymal,1",  # incomplete: missing subtypes are 0
             f"{e}_subdural,1",  # incomplete without any: any = OR
             "ID_xyz_any,1", f"{a}_bleed,1", f"{a}_any,2", f"{a}_any"]  # malformed
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    labels, info = T.read_labels(tmp_path / "l.csv")
    assert labels == {a: [1, 0, 0, 0, 0, 1], b: [0, 0, 0, 0, 0, 1], c: [0, 1, 0, 0, 0, 0],
                      d: [1, 0, 1, 0, 0, 0], e: [1, 0, 0, 0, 0, 1]}
    assert {k: info[k]["count"] for k in ("duplicate_rows", "conflicting_rows", "malformed_rows", "incomplete_images",
                                          "any_disagrees")} == \
        {"duplicate_rows": 6, "conflicting_rows": 1, "malformed_rows": 4, "incomplete_images": 2, "any_disagrees": 2}
    # b: the OR says any, the file says 0 -> reported too; c likewise
    assert {x["image"] for x in info["any_disagrees"]["examples"]} == {b, c}
    assert info["conflicting_rows"]["examples"][0] == {"line": 20, "image": b, "subtype": "subdural", "first_line": 8}
    assert (info["rows"], info["images"], info["positive_images"], info["rows_used"]) == (32, 5, 3, 21)
    assert info["adds_up"] and info["positives"]["subdural"] == 3


def test_a_pandas_rewrite_reads_the_same(tmp_path):
    rows = [f"{i},{line}" for i, line in enumerate(label_lines(image_id(7), [1, 0, 0, 0, 1, 0]))]
    (tmp_path / "l.csv").write_text(",ID,Label\n" + "\n".join(rows) + "\n")
    labels, info = T.read_labels(tmp_path / "l.csv")
    assert labels == {image_id(7): [1, 0, 0, 0, 1, 0]} and "malformed_rows" not in info


@pytest.mark.parametrize("text, match", [
    ("Image,Label\n", r"l.csv: not the label file: no 'ID' column.*Re-download stage_2_train.csv"),
    ("", r"l.csv: the label file is empty"),
])
def test_label_file_without_its_columns_is_named(tmp_path, text, match):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(DataError, match=match) as e:
        T.read_labels(tmp_path / "l.csv", name="l.csv")
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------- the phantom


@pytest.mark.parametrize("lesion", L.LESIONS)
def test_phantom_draws_each_subtype_where_it_labels_it(lesion):
    k = L.SUBTYPES.index(lesion)
    hu, labels = head_volume(np.random.default_rng(k), (12, 64, 64), (lesion,))
    assert hu.dtype == np.float32 and labels.dtype == np.uint8 and labels.shape == (12, 6)
    assert labels[:, k].any() and np.array_equal(labels[:, 0], labels[:, k])
    assert not np.delete(labels, [0, k], axis=1).any()
    blood = ((hu > 52) & (hu < 95)).reshape(12, -1).sum(1)  # fresh blood, above grey matter and noise
    on, off = blood[labels[:, k] == 1], blood[labels[:, k] == 0]
    assert on.min() >= 2 and on.mean() > 3 * max(1.0, off.mean()), (lesion, on, off)


def test_phantom_anatomy_in_hu():
    hu, labels = head_volume(np.random.default_rng(0), (16, 64, 64))
    assert not labels.any()
    mid = hu[8]
    assert np.median(mid[:4, :4]) < -950  # air in the corner
    assert mid.max() > 900  # skull
    center = mid[24:40, 24:40]
    assert (np.abs(center - 30) < 20).mean() > 0.5 and (center < 15).any()  # parenchyma, CSF in the ventricles
    a, _ = head_volume(np.random.default_rng(5), (8, 32, 32), ("subdural", "epidural"))
    b, _ = head_volume(np.random.default_rng(5), (8, 32, 32), ("subdural", "epidural"))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="lesion 'stroke'"):
        head_volume(np.random.default_rng(0), lesions=("stroke",))


# ---------------------------------------------------------------------------------------- synth -> prepare


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("ich") / "raw"
    t0 = time.perf_counter()
    s = synthesize(root, **SYNTH_ARGS)
    return root, s, time.perf_counter() - t0


@pytest.fixture(scope="module")
def prepared(synth, tmp_path_factory):
    root, s, _ = synth
    out = tmp_path_factory.mktemp("ich-out") / "p"
    rep = rsna_ich.prepare(root, out, {"folds": 3, "cache_size": 32}, workers=2, progress=None)
    return out, rep


def test_synth_layout_and_quirks(synth):
    root, s, took = synth
    assert took < 20 and (root / ".medpipe-synth.json").is_file()
    train = sorted((root / L.TRAIN_DIR).glob("*.dcm"))
    test = sorted((root / L.TEST_DIR).glob("*.dcm"))
    assert len(train) == s["images"] and len(test) == s["test_images"] >= 2
    assert s["files"] == len(train) + len(test) + 2 and all(L.is_image_id(p.stem) for p in train + test)
    assert (root / s["corrupt"]).is_file() and s["corrupt"].endswith("ID_6431af929.dcm")
    labels, info = T.read_labels(root / L.LABELS_FILE)
    assert set(labels) == {p.stem for p in train} and info["adds_up"]
    assert info["duplicate_rows"]["count"] == 12 and info["conflicting_rows"]["count"] == 1
    assert "any_disagrees" not in info and "malformed_rows" not in info
    assert s["positives"] == info["positives"] and all(v > 0 for v in s["positives"].values())
    assert T.read_submission_ids(root / L.SUBMISSION_FILE) == {p.stem for p in test}
    with warnings.catch_warnings():  # the real files' ID_... identifiers are not DICOM UIDs
        warnings.simplefilter("ignore")
        _check_headers(train)


def _check_headers(train):
    import pydicom

    files = [p for p in train if p.stem != "ID_6431af929"]
    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    assert {h.Modality for h in heads} == {"CT"} and all(h.SOPInstanceUID == p.stem for h, p in zip(heads, files))
    assert sum(h.BitsStored == 12 and h.PixelRepresentation == 0 and float(h.RescaleIntercept) > -100
               for h in heads) > 0
    assert any(not isinstance(h.WindowCenter, (str, float)) and len(h.WindowCenter) == 2 for h in heads)
    assert len({h.PatientID for h in heads}) == SYNTH_ARGS["patients"] and all(h.PatientID.startswith("ID_")
                                                                                for h in heads)


def test_synth_is_deterministic_and_refuses_other_arguments(synth, tmp_path):
    root, s, _ = synth
    assert synthesize(root, **SYNTH_ARGS) == s  # same arguments: nothing to do
    again = synthesize(tmp_path / "again", **SYNTH_ARGS)
    assert again == {**s, "out": str(tmp_path / "again")}
    third = sorted(p.name for p in (root / L.TRAIN_DIR).iterdir())[3]
    for rel in (L.LABELS_FILE, s["corrupt"], f"{L.TRAIN_DIR}/{third}"):
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes()
    with pytest.raises(FileExistsError, match="different arguments"):
        synthesize(root, patients=11, size=48)


def test_round_trip_counts_add_up(synth, prepared):
    root, s, _ = synth
    out, rep = prepared
    assert rep["source"]["synthetic"] and rep["accounting"]["adds_up"]
    assert rep["accounting"]["files_seen"] == s["files"] and rep["accounting"]["files_skipped"] == 1
    assert rep["skipped"] == [{"path": s["corrupt"], "kind": "known_corrupt",
                               "reason": "known corrupt image in the RSNA set"}]
    assert rep["records"] == s["images"] - 1 and rep["inference_records"] == s["test_images"]
    assert rep["inputs"] == {"dicom": s["images"], "test_dicom": s["test_images"], "label_file": 1, "submission": 1,
                             "total": s["files"]}
    assert rep["anomaly_counts"] == {"bits12_fixed": s["bits12_series"], "labels_duplicate_rows": 1,
                                     "labels_conflicting_rows": 1}
    fixed = [a for a in rep["anomalies"] if a["kind"] == "bits12_fixed"]
    assert all(a["action"].startswith("fixed: ") for a in fixed)
    assert sum(int(re.match(r"fixed: (\d+)", a["action"]).group(1)) for a in fixed) == s["bits12_images"] == \
        rep["dicom"]["bits12_encoding"]
    from medpipe.io.ct_dicom import read_ct_header

    read = [p for p in (root / L.TRAIN_DIR).glob("*.dcm") if p.stem not in L.KNOWN_CORRUPT]
    read += list((root / L.TEST_DIR).glob("*.dcm"))
    assert rep["dicom"]["headers"] == len(read) == rep["header_throughput"]["files"]
    assert rep["dicom"]["multi_valued_window"] == sum(read_ct_header(p)["windows_in_header"] == 2 for p in read) > 0
    lf = rep["label_file"]
    assert lf["images_in_records"] + lf["images_whose_dicom_was_skipped"] + lf["images_without_dicom"] == lf["images"]
    assert rep["header_throughput"]["slices_per_s"] > 0 and rep["cache_throughput"]["slices_per_s"] > 0
    assert rep["cache_throughput"]["slices"] == rep["records"] + rep["inference_records"]
    assert rep["series"]["training"] == s["series"] and rep["patients"] == SYNTH_ARGS["patients"]


def test_records_neighbours_and_folds(synth, prepared):
    root, s, _ = synth
    out, rep = prepared
    dl, _ = load(out)
    assert dl["tasks"] == {"labels": {"kind": "multilabel", "class_names": list(L.SUBTYPES)}}
    assert dl["input"]["channels"] == 3 and dl["input"]["window_channels"] == ["brain", "subdural", "soft_tissue"]
    assert dl["input"]["windows"] == {k: list(v) for k, v in CT_WINDOWS.items()} and dl["synthetic"] is True
    labels, _ = T.read_labels(root / L.LABELS_FILE)
    by_series = defaultdict(list)
    fold_of = {}
    for r in dl["training"]:
        assert set(r) == RECORD_KEYS
        assert r["image"] == f"images/{r['id']}.png" and r["labels"] == labels[r["id"]] and r["scan"] == r["series"]
        assert (r["width"], r["height"]) == (32, 32) and r["source"] == f"{L.TRAIN_DIR}/{r['id']}.dcm"
        assert fold_of.setdefault(r["patient"], r["fold"]) == r["fold"]  # patients never in two folds
        by_series[r["series"]].append(r)
    assert len(by_series) == s["series"] and set(fold_of.values()) == {0, 1, 2}
    for rs in by_series.values():
        rs.sort(key=lambda r: r["slice_index"])
        assert [r["slice_index"] for r in rs] == list(range(len(rs)))
        zs = [r["z"] for r in rs]
        assert zs == sorted(zs) and len(set(zs)) == len(zs)
        assert len({r["patient"] for r in rs}) == 1 and len({r["study"] for r in rs}) == 1
        for k, r in enumerate(rs):
            assert r["neighbors"] == [rs[max(k - 1, 0)]["image"], rs[min(k + 1, len(rs) - 1)]["image"]]
    gap = [rs for rs in by_series.values() if len({round(b["z"] - a["z"], 2) for a, b in zip(rs, rs[1:])}) > 1]
    assert len(gap) == 1  # the series that lost its corrupt slice: linked across the gap
    assert [e["image"].split("/")[0] for e in dl["inference"]] == ["inference"] * s["test_images"]
    assert all("labels" not in e and "fold" not in e and len(e["neighbors"]) == 2 for e in dl["inference"])
    for r in dl["training"][:5] + dl["inference"][:1]:
        with Image.open(out / r["image"]) as im:
            assert im.mode == "RGB" and im.size == (32, 32)
    from monai.data import load_decathlon_datalist

    assert len(load_decathlon_datalist(out / "datalist.json", data_list_key="training")) == rep["records"]
    md = (out / "prepare_report.md").read_text()
    assert "## Label file" in md and "## DICOM headers" in md and "slices/s" in md


def test_stored_png_is_the_three_windows_of_the_hu(tmp_path):
    """A slice written in the bad 12-bit encoding is stored exactly like the same slice written normally."""
    hu, _ = head_volume(np.random.default_rng(1), (4, 32, 32), ("intraparenchymal",))
    hu = np.clip(np.rint(hu), -1000, 3000)
    ids = [[image_id(10 + i) for i in range(4)], [image_id(20 + i) for i in range(4)]]
    rows = ["ID,Label"]
    for k, (quirk, names) in enumerate(zip((None, "bits12_wrapped"), ids)):
        write_ct_series(tmp_path / L.TRAIN_DIR, hu, patient_id=f"ID_pat{k}", study_uid=f"ID_st{k}",
                        series_uid=f"ID_se{k}",
                        file_names=[f"{n}.dcm" for n in names], sop_uids=names, quirk=quirk)
        rows += [line for n in names for line in label_lines(n, [0] * 6)]
    (tmp_path / L.LABELS_FILE).write_text("\n".join(rows) + "\n")
    rep = run(tmp_path, tmp_path.parent / "o")
    assert rep["anomaly_counts"] == {"bits12_fixed": 1}
    for a, b in zip(*ids):
        with Image.open(tmp_path.parent / "o" / "images" / f"{a}.png") as ia, \
                Image.open(tmp_path.parent / "o" / "images" / f"{b}.png") as ib:
            assert np.array_equal(np.asarray(ia), np.asarray(ib))
    with Image.open(tmp_path.parent / "o" / "images" / f"{ids[0][1]}.png") as im:
        assert np.array_equal(np.asarray(im), window_channels(hu[1]))


# ---------------------------------------------------------------------------------------- bad files and pairing


@pytest.fixture
def quirky(tmp_path):
    """A hand-built download: two patients with shuffled slice names, and one file of every bad kind."""
    import pydicom

    root = tmp_path / "src"
    rng = np.random.default_rng(0)
    rows = ["ID,Label"]
    series = {}
    n = 0
    for p in range(4):
        hu, labels = head_volume(rng, (5, 32, 32), ("subdural",) if p % 2 else ())
        names = [image_id(100 + n + i) for i in rng.permutation(5)]  # file names not in z order
        n += 5
        write_ct_series(root / L.TRAIN_DIR, hu, patient_id=f"ID_p{p}", study_uid=f"ID_st{p}", series_uid=f"ID_se{p}",
                        file_names=[f"{m}.dcm" for m in names], sop_uids=names, windows=((36, 80), (40, 80)),
                        z_offset=100.0 - 50 * p)
        series[f"ID_se{p}"] = names
        rows += [line for m, lab in zip(names, labels.tolist()) for line in label_lines(m, lab)]
    bad = {}
    for kind in ("no_pixel_data", "wrong_modality", "truncated_dicom", "unreadable_dicom", "no_label_row"):
        m = image_id(900 + len(bad))
        bad[kind] = m
        write_ct_series(root / L.TRAIN_DIR, np.zeros((1, 32, 32), np.float32), patient_id="ID_p0", study_uid="ID_st0",
                        series_uid="ID_se0", file_names=[f"{m}.dcm"], sop_uids=[m], z_offset=500.0 + 5 * len(bad),
                        modality="MR" if kind == "wrong_modality" else "CT")
        path = root / L.TRAIN_DIR / f"{m}.dcm"
        if kind == "no_pixel_data":
            ds = pydicom.dcmread(path)
            del ds.PixelData
            ds.save_as(path)
        elif kind == "truncated_dicom":
            path.write_bytes(path.read_bytes()[:-300])
        elif kind == "unreadable_dicom":
            path.write_bytes(b"junk" * 50)
        if kind != "no_label_row":
            rows += label_lines(m, [0] * 6)
    rows += label_lines(image_id(999), [1, 0, 0, 0, 1, 0])  # a label row without a DICOM
    (root / L.LABELS_FILE).write_text("\n".join(rows) + "\n")
    (root / "README.txt").write_text("not part of the download")
    return root, series, bad


def test_every_bad_file_is_skipped_with_its_reason(quirky, tmp_path):
    root, series, bad = quirky
    rep = run(root, tmp_path / "out")
    skipped = {s["path"]: s for s in rep["skipped"]}
    for kind, m in bad.items():
        assert skipped[f"{L.TRAIN_DIR}/{m}.dcm"]["kind"] == kind, kind
    assert "modality MR (expected CT)" in skipped[f"{L.TRAIN_DIR}/{bad['wrong_modality']}.dcm"]["reason"]
    assert "truncated" in skipped[f"{L.TRAIN_DIR}/{bad['truncated_dicom']}.dcm"]["reason"]
    assert "no pixel data" in skipped[f"{L.TRAIN_DIR}/{bad['no_pixel_data']}.dcm"]["reason"]
    assert skipped["README.txt"]["kind"] == "not_in_layout"
    assert rep["records"] == 20 and rep["accounting"]["adds_up"] and rep["accounting"]["files_skipped"] == 6
    assert rep["label_file"]["images_without_dicom"] == 1
    assert rep["anomaly_counts"] == {"label_row_without_dicom": 1}
    assert rep["dicom"]["headers"] == 22 and rep["dicom"]["multi_valued_window"] == 20  # the bad ones: one window
    dl, _ = load(tmp_path / "out")
    for s, names in series.items():  # the slices come back in z order whatever their file names
        rs = sorted((r for r in dl["training"] if r["series"] == s), key=lambda r: r["slice_index"])
        assert [r["id"] for r in rs] == names
        assert rs[0]["neighbors"][0] == rs[0]["image"] and rs[-1]["neighbors"][1] == rs[-1]["image"]


def test_strict_writes_nothing(quirky, tmp_path):
    root, _, _ = quirky
    with pytest.raises(DataError, match=r"--strict: .*Nothing was written"):
        run(root, tmp_path / "out", strict=True)
    assert not (tmp_path / "out").exists()


def test_test_size_holds_out_whole_patients(synth, tmp_path):
    root, s, _ = synth
    rep = run(root, tmp_path / "out", test_size=3, folds=3)
    dl, _ = load(tmp_path / "out")
    test = {r["patient"] for r in dl["test"]}
    assert len(test) == 3 == len(rep["test_patients"]) and not test & {r["patient"] for r in dl["training"]}
    assert rep["records"] == len(dl["training"]) + len(dl["test"])
    with pytest.raises(UserError, match=r"--test-size 9: 10 patients have a record, so at most 7"):
        run(root, tmp_path / "o2", test_size=9, folds=3)
    with pytest.raises(UserError, match=r"give one of them"):
        run(root, tmp_path / "o3", test_size=2, test_fraction=0.2)


def test_rerun_is_up_to_date_and_workers_agree(synth, prepared, tmp_path):
    root, _, _ = synth
    out, _ = prepared
    assert rsna_ich.prepare(root, out, {"folds": 3, "cache_size": 32}, workers=2, progress=None)["up_to_date"]
    run(root, tmp_path / "one", workers=1, folds=3, cache_size=32)
    a, b = load(tmp_path / "one")[0], load(out)[0]
    assert a == b


# ---------------------------------------------------------------------------------------- CLI


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        cli_main(["prepare", "rsna-ich", "--help"])
    text = capsys.readouterr().out
    for flag in ("--test-size", "--cache-size", "--test-fraction", "--folds", "--seed", "--workers", "--strict",
                 "examples:"):
        assert flag in text, flag
    assert get_spec("rsna-ich").synthesizer == "data_prep.rsna_ich.synth:synthesize"


def test_cli_synth_then_prepare(tmp_path, capsys):
    assert cli_main(["synth", "rsna-ich", "--out", str(tmp_path / "raw"), "--patients", "5", "--size", "32"]) == 0
    text = capsys.readouterr().out
    assert "synthetic rsna-ich: 5 patients" in text and "known_corrupt_image" in text
    assert cli_main(["prepare", "rsna-ich", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "p"),
                     "--folds", "2", "--quiet", "--cache-size", "32"]) == 0
    text = capsys.readouterr().out
    assert "from 5 patients" in text and "throughput: headers" in text and "slices/s" in text
    assert "known corrupt image of the RSNA set" in text


@pytest.mark.parametrize("setup, match", [
    ("no_labels", r"no stage_2_train.csv found under it.*medpipe synth rsna-ich"),
    ("no_dicoms", r"no training DICOMs found: expected stage_2_train/ID_<image>.dcm"),
])
def test_missing_parts_are_user_errors(quirky, tmp_path, capsys, setup, match):
    import shutil

    root, _, _ = quirky
    if setup == "no_labels":
        (root / L.LABELS_FILE).unlink()
    else:
        shutil.rmtree(root / L.TRAIN_DIR)
    rc = cli_main(["prepare", "rsna-ich", "--src", str(root), "--out", str(tmp_path / "o"), "--folds", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and str(root) in err
    assert re.search(match, " ".join(err.split())), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, match", [
    (["--cache-size", "8"], "argument --cache-size: '8': expected 0 (no cache) or a size from 32"),
    (["--test-size", "-1"], "argument --test-size: -1: must be >= 0"),
])
def test_cli_refuses_bad_options(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        cli_main(["prepare", "rsna-ich", "--src", str(tmp_path), "--out", str(tmp_path / "o"), *argv])
    assert e.value.code == 2 and match in capsys.readouterr().err


def test_cli_refuses_bad_synth_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["synth", "rsna-ich", "--out", str(tmp_path / "o"), "--size", "16"])
    assert e.value.code == 2 and "argument --size: 16: must be >= 32 and <= 512" in capsys.readouterr().err


def test_files_named_like_images_only(tmp_path):
    assert Path(L.KNOWN_CORRUPT[0] + ".dcm").stem == "ID_6431af929" and L.is_image_id(L.KNOWN_CORRUPT[0])
