"""medpipe prepare cxr14: label-file quirks, images found by name, gray conversion, boxes, splits, accounting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import cxr14
from data_prep.cxr14 import layout as L
from data_prep.cxr14 import tables as T
from data_prep.cxr14.convert import resized_size, scale_box
from medpipe.cli import main as cli_main
from medpipe.errors import DataError, UserError
from tests.conftest import REPO, corrupt_png_pixels

SHARED_CXR = REPO.parent / "shared" / "data" / "ChestX-ray14"

#: (image, finding labels, patient, age as written); patients 1..6, 2-3 images each
ROWS = [
    ("00000001_000.png", "Cardiomegaly", 1, "058Y"), ("00000001_001.png", "Cardiomegaly|Emphysema", 1, "058"),
    ("00000002_000.png", "No Finding", 2, "81"), ("00000002_001.png", "Infiltration", 2, "81"),
    ("00000003_000.png", "Effusion|Mass", 3, "045Y"), ("00000003_001.png", "No Finding", 3, "46"),
    ("00000004_000.png", "Nodule", 4, "33"), ("00000004_001.png", "No Finding", 4, "33"),
    ("00000005_000.png", "Hernia|Pneumothorax", 5, "70"), ("00000005_001.png", "Atelectasis", 5, "71"),
    ("00000006_000.png", "No Finding", 6, "29"), ("00000006_001.png", "Pleural_Thickening", 6, "29"),
]


def write_label_file(root: Path, rows=ROWS, variant: str = "2017") -> Path:
    """A label file with the variant's header: ``2017`` (trailing comma), ``v2020``, or ``pandas`` (a re-write)."""
    if variant == "pandas":  # df.to_csv(index=True) of the 2017 file as pandas reads it
        head = ("," + "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],Unnamed: 11")
    else:
        head = L.DATA_ENTRY_2017_HEADER if variant == "2017" else L.DATA_ENTRY_2017_HEADER.rstrip(",")
    lines = [head]
    for i, (name, fl, pid, age) in enumerate(rows):
        fu = int(name[9:12])
        body = f"{name},{fl},{fu},{pid},{age},{'M' if pid % 2 else 'F'},{'PA' if i % 3 else 'AP'},2500,2048,0.143,0.143"
        lines.append((f"{i}," + body + ",") if variant == "pandas" else body + ("," if variant == "2017" else ""))
    path = root / (L.LABEL_FILES[0] if variant == "v2020" else L.LABEL_FILES[1])
    root.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_image(path: Path, size: int = 64, mode: str = "L", value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((size, size), value, np.uint8)
    a[size // 4: size // 2, size // 4: size // 2] = 200
    im = Image.fromarray(a)
    if mode != "L":
        im = im.convert(mode)
    im.save(path)


def make_dataset(root: Path, rows=ROWS, variant: str = "2017", size: int = 64, folder=None, bbox=True,
                 modes=None) -> Path:
    """Images in NIH folders (``folder(i, name)`` to choose another path), the label file and a box list."""
    write_label_file(root, rows, variant)
    for i, (name, *_r) in enumerate(rows):
        rel = folder(i, name) if folder else f"images_{i // 5 + 1:03d}/images/{name}"
        write_image(root / rel, size, (modes or {}).get(name, "L"))
    if bbox:
        (root / L.BBOX_FILE).write_text(
            L.BBOX_HEADER + "\n"
            "00000001_000.png,Cardiomegaly,256.0,512.0,512.0,256.0\n"
            "00000002_001.png,Infiltrate,100.5,200.25,300.0,150.0\n"
            "00000003_000.png,Mass,700,100,50,60\n")
    return root


def run(src, out, **kw):
    workers = kw.pop("workers", 1)
    kw.setdefault("folds", 2)
    return cxr14.prepare(src, out, kw, workers=workers, progress=None)


def load(out):
    return json.loads((out / "datalist.json").read_text()), json.loads((out / "prepare_report.json").read_text())


def records(out) -> dict:
    dl, _ = load(out)
    return {r["image"].rsplit("/", 1)[-1]: r for r in dl["training"] + dl.get("test", [])}


# ---------------------------------------------------------------------------------------- tables


@pytest.mark.parametrize("variant", ["2017", "v2020", "pandas"])
def test_label_file_headers_read_alike(tmp_path, variant):
    table = T.read_label_file(write_label_file(tmp_path, variant=variant))
    assert len(table.rows) == len(ROWS) and table.info["rows"] == len(ROWS)
    r = table.rows["00000001_001.png"]
    assert (r.patient, r.follow_up, r.age, r.sex, r.findings) == ("00000001", 1, 58, "M", ("Cardiomegaly", "Emphysema"))
    assert r.original_size == (2500, 2048) and r.finding_labels == "Cardiomegaly|Emphysema"
    assert table.rows["00000001_000.png"].age == 58  # "058Y"
    assert "OriginalImage[Width,Height]" in table.info["columns"]
    assert table.info["trailing_comma"] == (variant == "2017")
    assert table.info["age_formats"] == {"years": 10, "suffixed": 2}


@pytest.mark.parametrize("text,expected", [
    ("058Y", (58, "suffixed")), ("58", (58, "years")), ("018M", (1, "suffixed")), ("003D", (0, "suffixed")),
    ("414", (None, "implausible")), ("", (None, "missing")), ("abc", (None, "invalid")),
])
def test_parse_age(text, expected):
    assert T.parse_age(text) == expected


def test_label_file_problems_are_counted_not_fatal(tmp_path):
    rows = ROWS[:4] + [("00000009_000.png", "Flu|Mass", 9, "40"), ("00000001_000.png", "Mass", 1, "58")]
    table = T.read_label_file(write_label_file(tmp_path, rows))
    assert table.info["duplicate_rows"]["count"] == 1 and table.rows["00000001_000.png"].findings == ("Cardiomegaly",)
    assert table.info["unknown_findings"]["examples"][0]["names"] == ["Flu"]
    assert table.rows["00000009_000.png"].unknown == ("Flu",)


def test_not_a_label_file_is_named(tmp_path):
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"x\.csv: not a ChestX-ray14 label file.*Image Index"):
        T.read_label_file(tmp_path / "x.csv")


def test_bbox_header_quirk_and_infiltrate_alias(tmp_path):
    make_dataset(tmp_path)
    boxes, info = T.read_bbox_file(tmp_path / L.BBOX_FILE)
    assert info["rows"] == info["boxes"] == 3 and info["aliases"] == {"Infiltrate": 1}
    b = boxes["00000002_001.png"][0]
    assert (b.finding, b.label, b.x, b.y, b.w, b.h) == ("Infiltration", "Infiltrate", 100.5, 200.25, 300.0, 150.0)


@pytest.mark.parametrize("box,size,expected", [
    ((256.0, 512.0, 512.0, 256.0), (1024, 1024), ([256.0, 512.0, 768.0, 768.0], False)),
    ((256.0, 512.0, 512.0, 256.0), (64, 64), ([16.0, 32.0, 48.0, 48.0], False)),
    ((256.0, 512.0, 512.0, 256.0), (256, 128), ([64.0, 64.0, 192.0, 96.0], False)),  # per axis
    ((900.0, 900.0, 200.0, 200.0), (64, 64), ([56.25, 56.25, 64.0, 64.0], True)),  # clipped
])
def test_scale_box(box, size, expected):
    assert scale_box(box, *size) == expected


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_to_gray_gives_8bit_one_channel(mode):
    from data_prep.cxr14.convert import to_gray

    a = np.array([[0, 100], [200, 255]], np.uint8)
    im = Image.fromarray(a.astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(a).convert(mode)
    g, note = to_gray(im)
    assert g.mode == "L" and note == ""
    assert np.abs(np.asarray(g).astype(int) - a).max() <= (3 if mode == "P" else 0)
    color, note = to_gray(Image.fromarray(np.dstack([a, a // 2, a]), "RGB"))
    assert note == "color" and color.mode == "L"


def test_resized_size_never_enlarges():
    assert resized_size(1024, 1024, 256) == (256, 256) and resized_size(64, 64, 256) == (64, 64)


def test_categories():
    assert L.label_names("categories") == ("Lung", "Cardiomegaly", "Pleural", "Hernia", "Normal")
    assert L.categories_vector(L.findings_vector(["Cardiomegaly", "Emphysema"])) == [1, 1, 0, 0, 0]
    assert L.categories_vector(L.findings_vector(["Pneumothorax"])) == [0, 0, 1, 0, 0]
    assert L.categories_vector(L.findings_vector([])) == [0, 0, 0, 0, 1]


# ---------------------------------------------------------------------------------------- prepare


def test_records_schema_and_header(tmp_path):
    src = make_dataset(tmp_path / "src")
    rep = run(src, tmp_path / "out")
    dl, _ = load(tmp_path / "out")
    assert dl["tasks"] == {"labels": {"kind": "multilabel", "class_names": list(L.FINDINGS)}}
    assert dl["input"]["modality"] == "XR" and dl["input"]["channels"] == 1
    recs = records(tmp_path / "out")
    r = recs["00000001_001.png"]
    assert set(r) == {"image", "patient", "labels", "finding_labels", "view", "age", "sex", "follow_up", "nih_boxes",
                      "width", "height", "source", "fold"}
    assert r["patient"] == "00000001" and r["age"] == 58 and r["sex"] == "M" and r["follow_up"] == 1
    assert r["labels"] == L.findings_vector(["Cardiomegaly", "Emphysema"]) and r["finding_labels"] == "Cardiomegaly|Emphysema"
    assert r["view"] in ("PA", "AP") and "boxes" not in r
    assert recs["00000001_000.png"]["age"] == 58  # written "058Y"
    assert rep["records"] == 12 and rep["patients"] == 6 and rep["positives"] == 8
    assert rep["accounting"]["adds_up"] and rep["skipped"] == [] and rep["anomalies"] == []
    from monai.data import load_decathlon_datalist

    assert len(load_decathlon_datalist(tmp_path / "out/datalist.json", data_list_key="training")) == 12


def test_boxes_scaled_into_the_stored_image_and_alias_applied(tmp_path):
    src = make_dataset(tmp_path / "src", size=64)
    rep = run(src, tmp_path / "out")
    recs = records(tmp_path / "out")
    assert recs["00000001_000.png"]["nih_boxes"] == [{"finding": "Cardiomegaly", "box": [16.0, 32.0, 48.0, 48.0]}]
    assert recs["00000002_001.png"]["nih_boxes"] == [
        {"finding": "Infiltration", "box": [6.281, 12.516, 25.031, 21.891]}]
    assert rep["nih_boxes"]["placed"] == 3 and rep["nih_boxes"]["aliases"] == {"Infiltrate": 1}
    # a Mass box on an image labelled Effusion|Mass: no anomaly; the box's finding is among the labels
    assert not [a for a in rep["anomalies"] if a["kind"] == "box_finding_not_in_labels"]


def test_rgb_and_rgba_converted_to_gray_and_counted(tmp_path):
    modes = {"00000001_000.png": "RGB", "00000002_000.png": "RGBA", "00000003_000.png": "RGB"}
    src = make_dataset(tmp_path / "src", modes=modes)
    rep = run(src, tmp_path / "out")
    assert rep["gray_conversion"] == {"converted": 3, "by_source_mode": {"RGB": 2, "RGBA": 1}}
    for name in [*modes, "00000004_000.png"]:
        with Image.open(tmp_path / "out/images" / name) as im:
            assert im.mode == "L"
    r = records(tmp_path / "out")["00000002_000.png"]
    assert r["source"]["mode"] == "RGBA" and r["source"]["converted"]
    with Image.open(tmp_path / "out/images/00000001_000.png") as im:
        assert np.asarray(im)[20, 20] == 200  # gray-in-RGB converts exactly
    assert rep["link_methods"] == {"copy": 9, "converted": 3}


def test_folders_are_never_labels_and_disagreement_is_an_anomaly(tmp_path):
    def folder(i, name):  # a mirror tree that files every image under 0_normal
        return f"train/0_normal/{name}"

    src = make_dataset(tmp_path / "src", folder=folder)
    rep = run(src, tmp_path / "out")
    dis = [a for a in rep["anomalies"] if a["kind"] == "folder_label_disagrees"]
    assert len(dis) == 8  # the 8 images with findings; the 4 "No Finding" ones agree
    assert "0_normal" in dis[0]["action"] and "label file is used" in dis[0]["action"]
    assert records(tmp_path / "out")["00000001_000.png"]["labels"][1] == 1


def test_duplicates_keep_the_larger_copy(tmp_path):
    src = make_dataset(tmp_path / "src", size=64)
    write_image(src / "images/00000001_000.png", size=128)
    write_image(src / "NIH1000/train/1_abnormal/00000001_000.png", size=32)
    rep = run(src, tmp_path / "out")
    r = records(tmp_path / "out")["00000001_000.png"]
    assert r["source"]["path"] == "images/00000001_000.png" and r["width"] == 128
    dups = sorted(s["path"] for s in rep["skipped"] if s["kind"] == "duplicate")
    assert dups == ["NIH1000/train/1_abnormal/00000001_000.png", "images_001/images/00000001_000.png"]
    assert [a["kind"] for a in rep["anomalies"]] == ["duplicate_image"]
    assert r["nih_boxes"][0]["box"] == [32.0, 64.0, 96.0, 96.0]  # scaled to the kept 128-px copy


def test_counts_add_up_with_every_kind_of_problem(tmp_path):
    rows = ROWS + [("00000007_000.png", "Mass", 7, "50"), ("00000008_000.png", "Flu", 8, "50")]
    src = make_dataset(tmp_path / "src", rows)
    next(src.glob("images_*/images/00000007_000.png")).unlink()  # a label row without its image
    write_image(src / "extra/00000099_000.png")  # an image without a label row
    write_image(src / "extra/not_an_index.png")
    data = (src / "images_001/images/00000002_000.png").read_bytes()
    (src / "images_001/images/00000002_000.png").write_bytes(data[: len(data) // 2])  # truncated
    (src / "README.txt").write_text("readme")
    with open(src / L.BBOX_FILE, "a") as f:
        f.write("00000077_000.png,Mass,1,2,3,4\n")  # image without a label row
        f.write("00000007_000.png,Mass,1,2,3,4\n")  # image not found
        f.write("00000002_000.png,Nodule,1,2,3,4\n")  # image unreadable
        f.write("00000003_001.png,Banana,1,2,3,4\n")  # unknown finding
        f.write("garbage\n")
    rep = run(src, tmp_path / "out")
    kinds = rep["skipped_counts"]
    assert kinds == {"no_label_row": 2, "unreadable_image": 1, "unknown_finding": 1, "not_in_layout": 1}
    assert rep["accounting"]["adds_up"] and rep["records"] == 11
    assert rep["accounting"]["files_seen"] == rep["accounting"]["files_in_records"] + rep["accounting"]["files_skipped"]
    lf = rep["label_file"]
    assert (lf["rows"], lf["rows_with_image_found"], lf["rows_without_image"], lf["rows_whose_image_was_skipped"]) == \
        (14, 12, 1, 1) and lf["adds_up"]
    b = rep["nih_boxes"]
    assert (b["rows"], b["placed"], b["on_images_not_found"], b["on_images_not_in_label_file"],
            b["on_images_skipped_or_dropped"], b["malformed_rows"]["count"], b["unknown_findings"]["count"]) == \
        (8, 3, 1, 1, 1, 1, 1) and b["adds_up"]
    kinds = {a["kind"] for a in rep["anomalies"]}
    assert {"box_image_not_in_label_file", "bbox_malformed_rows", "bbox_unknown_findings",
            "label_file_unknown_findings"} <= kinds
    md = (tmp_path / "out/prepare_report.md").read_text()
    assert "adds up: True" in md and "Per-class prevalence per part" in md


def test_label_set_categories_and_same_split_as_findings(tmp_path):
    src = make_dataset(tmp_path / "src")
    run(src, tmp_path / "f", test_fraction=0.3)
    rep = run(src, tmp_path / "c", label_set="categories", test_fraction=0.3)
    dl, _ = load(tmp_path / "c")
    assert dl["tasks"]["labels"]["class_names"] == ["Lung", "Cardiomegaly", "Pleural", "Hernia", "Normal"]
    assert dl["categories"]["Pleural"] == ["Effusion", "Pneumothorax", "Pleural_Thickening"]
    rf, rc = records(tmp_path / "f"), records(tmp_path / "c")
    assert rc["00000005_000.png"]["labels"] == [0, 0, 1, 1, 0]  # Hernia|Pneumothorax
    assert rc["00000002_000.png"]["labels"] == [0, 0, 0, 0, 1] and rc["00000002_000.png"]["findings"] == [0] * 14
    assert {k: r.get("fold", "test") for k, r in rf.items()} == {k: r.get("fold", "test") for k, r in rc.items()}
    assert rep["positives"] == 8  # Normal is not a positive
    assert rep["bias"] is not None and "Normal" in rep["bias"]["per_class"]


def test_patient_split_with_test_fraction_is_patient_disjoint(tmp_path):
    src = make_dataset(tmp_path / "src")
    rep = run(src, tmp_path / "out", test_fraction=0.34)
    dl, _ = load(tmp_path / "out")
    train_p = {r["patient"] for r in dl["training"]}
    test_p = {r["patient"] for r in dl["test"]}
    assert not train_p & test_p and len(test_p) == 3 and rep["test_patients"] == sorted(test_p)
    assert set(rep["prevalence"]["parts"]) == {"fold 0", "fold 1", "test"}
    assert rep["bias"]["images_ratio"] == pytest.approx(len(dl["training"]) / len(dl["test"]), abs=1e-3)


def _official_lists(src, test_patients=(5, 6), also=()):
    names = [r[0] for r in ROWS]
    (src / L.OFFICIAL_LISTS["train_val"]).write_text(
        "\n".join(n for n in names if int(n[:8]) not in test_patients and n not in also) + "\n")
    (src / L.OFFICIAL_LISTS["test"]).write_text("\n".join(n for n in names if int(n[:8]) in test_patients or n in also))


def test_official_split(tmp_path):
    src = make_dataset(tmp_path / "src")
    names = [r[0] for r in ROWS]
    (src / L.OFFICIAL_LISTS["train_val"]).write_text("\n".join(n for n in names[:8]) + "\n")  # patients 1-4
    (src / L.OFFICIAL_LISTS["test"]).write_text("\n".join(names[8:10]) + "\n")  # patient 5; patient 6 in none
    rep = run(src, tmp_path / "out", split="official")
    dl, _ = load(tmp_path / "out")
    assert {r["patient"] for r in dl["test"]} == {"00000005"}
    assert {r["patient"] for r in dl["training"]} == {"00000001", "00000002", "00000003", "00000004"}
    skipped = [s for s in rep["skipped"] if s["kind"] == "not_in_split_lists"]
    assert sorted(s["path"].rsplit("/", 1)[-1] for s in skipped) == names[10:]
    assert "none of the --split official lists" in skipped[0]["reason"]
    assert rep["accounting"]["adds_up"] and rep["split_lists"]["files"] == {
        "train_val": "train_val_list.txt", "test": "test_list.txt"}


def test_official_split_without_lists_says_what_to_do(tmp_path):
    src = make_dataset(tmp_path / "src")
    (src / "labels").mkdir()
    (src / "labels/test_list.txt").write_text("00000001_000.png " + " ".join("0" * 14) + "\n")
    with pytest.raises(DataError, match=r"--split official: train_val_list.txt, test_list.txt not found.*"
                                        r"labels/test_list.txt.*use --split chexnet") as e:
        run(src, tmp_path / "out", split="official")
    assert not (tmp_path / "out").exists() and "\n" not in str(e.value)


def _chexnet_lists(src, parts, flip=None):
    """parts: patient -> train|val|test; flip: an image whose list labels differ from the label file."""
    (src / "labels").mkdir(exist_ok=True)
    for part in ("train", "val", "test"):
        lines = []
        for name, fl, pid, _ in ROWS:
            if parts.get(pid) != part:
                continue
            vec = L.findings_vector(fl.split("|"))
            if name == flip:
                vec[13] = 1 - vec[13]
            lines.append(f"{name} " + " ".join(map(str, vec)))
        (src / "labels" / L.CHEXNET_LISTS[part]).write_text("\n".join(lines))  # no final newline


def test_chexnet_split_val_list_is_fold_0(tmp_path):
    src = make_dataset(tmp_path / "src")
    _official_lists(src)  # present too: told apart from CheXNet's test_list.txt by content
    _chexnet_lists(src, {1: "train", 2: "train", 3: "train", 4: "val", 5: "test", 6: "test"}, flip="00000001_000.png")
    rep = run(src, tmp_path / "out", split="chexnet", folds=3)
    dl, _ = load(tmp_path / "out")
    folds = {r["patient"]: r["fold"] for r in dl["training"]}
    assert folds["00000004"] == 0 and {folds[p] for p in ("00000001", "00000002", "00000003")} == {1, 2}
    assert {r["patient"] for r in dl["test"]} == {"00000005", "00000006"}
    assert all(r["split_list"] in ("train", "val", "test") for r in dl["training"] + dl["test"])
    sl = rep["split_lists"]
    assert sl["files"] == {"train": "labels/train_list.txt", "val": "labels/val_list.txt", "test": "labels/test_list.txt"}
    assert sl["label_disagreements"] == 1 and sl["label_disagreements_by_finding"] == {"Hernia": 1}
    dis = [a for a in rep["anomalies"] if a["kind"] == "list_labels_disagree"]
    assert len(dis) == 1 and "Hernia" in dis[0]["action"] and "label file's labels are used" in dis[0]["action"]
    assert records(tmp_path / "out")["00000001_000.png"]["labels"][13] == 0
    assert {s["path"] for s in rep["skipped"] if s["kind"] == "unused_list"} == {"train_val_list.txt", "test_list.txt"}
    assert "fold 0 = CheXNet's val_list.txt" in dl["folds_note"]


@pytest.mark.parametrize("split", ["official", "chexnet"])
def test_split_lists_that_leak_a_patient_fail_naming_it(tmp_path, split):
    src = make_dataset(tmp_path / "src")
    if split == "official":
        _official_lists(src, test_patients=(5, 6), also=("00000003_001.png",))
    else:
        _chexnet_lists(src, {1: "train", 2: "train", 3: "val", 4: "val", 5: "test", 6: "test"})
        # move one image of patient 1 into the test list
        tr = (src / "labels/train_list.txt").read_text().splitlines()
        moved = [l for l in tr if l.startswith("00000001_001")]
        (src / "labels/train_list.txt").write_text("\n".join(l for l in tr if l not in moved))
        (src / "labels/test_list.txt").write_text((src / "labels/test_list.txt").read_text() + "\n" + moved[0])
    with pytest.raises(DataError, match=r"1 patient\(s\) have images in two split lists.*patient 0000000[13]") as e:
        run(src, tmp_path / "out", split=split)
    assert "test_list.txt" in str(e.value) and not (tmp_path / "out").exists()


def test_engine_audit_names_leaking_patients():
    from medpipe.data.splits import audit_patient_split

    with pytest.raises(DataError, match="patient '00000001' is in training"):
        audit_patient_split([{"patient": "00000001", "fold": 0}], [{"patient": "00000001"}])


def test_test_fraction_is_refused_with_list_splits(tmp_path):
    src = make_dataset(tmp_path / "src")
    with pytest.raises(UserError, match="--test-fraction 0.2: applies to --split patient only"):
        run(src, tmp_path / "out", split="official", test_fraction=0.2)


def test_cache_size_writes_resized_gray_copies_and_scales_boxes(tmp_path):
    src = make_dataset(tmp_path / "src", size=128, modes={"00000002_001.png": "RGBA"})
    rep = run(src, tmp_path / "out", cache_size=32)
    recs = records(tmp_path / "out")
    for name, r in recs.items():
        assert (r["width"], r["height"]) == (32, 32) and r["source"]["width"] == 128
        with Image.open(tmp_path / "out" / r["image"]) as im:
            assert im.size == (32, 32) and im.mode == "L"
    assert recs["00000001_000.png"]["nih_boxes"][0]["box"] == [8.0, 16.0, 24.0, 24.0]
    assert rep["link_methods"] == {"cached": 12} and rep["gray_conversion"]["converted"] == 1
    assert rep["cache"] == {"size": 32, "stored_sizes": {"32x32": 12}}


def test_verify_decode_finds_damage_inside_the_pixels(tmp_path):
    src = make_dataset(tmp_path / "src", size=64)
    corrupt_png_pixels(src / "images_001/images/00000002_000.png", fix_crc=True)
    fast = run(src, tmp_path / "fast")
    assert fast["records"] == 12  # a header check cannot see it (documented)
    full = run(src, tmp_path / "full", verify="decode")
    assert full["records"] == 11 and full["skipped"][0]["kind"] == "unreadable_image"
    assert "00000002_000.png" in full["skipped"][0]["path"]


def test_label_file_option_and_its_absence(tmp_path):
    src = make_dataset(tmp_path / "src")
    (src / L.LABEL_FILES[1]).rename(tmp_path / "labels.csv")
    with pytest.raises(DataError, match=r"no label file found: expected Data_Entry_2017_v2020.csv or "
                                        r"Data_Entry_2017.csv.*--label-file"):
        run(src, tmp_path / "out")
    rep = run(src, tmp_path / "out", label_file=str(tmp_path / "labels.csv"))
    assert rep["records"] == 12 and rep["source"]["label_file_inside_src"] is False
    with pytest.raises(UserError, match="--label-file .*nope.csv: no such file"):
        run(src, tmp_path / "out2", label_file=str(tmp_path / "nope.csv"))


def test_two_label_files_prefer_v2020(tmp_path):
    src = make_dataset(tmp_path / "src")
    write_label_file(src / "old", ROWS, "2017")
    write_label_file(src, ROWS, "v2020")
    rep = run(src, tmp_path / "out")
    assert rep["label_file"]["used"] == L.LABEL_FILES[0]
    assert sorted(s["path"] for s in rep["skipped"] if s["kind"] == "unused_label_file") == [
        "Data_Entry_2017.csv", "old/Data_Entry_2017.csv"]


def test_rerun_is_up_to_date_and_cli_prints_a_summary(tmp_path, capsys):
    src = make_dataset(tmp_path / "src")
    argv = ["prepare", "cxr14", "--src", str(src), "--out", str(tmp_path / "o"), "--folds", "2", "--workers", "1"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "records: 12 from 6 patients" in out and "converted to 8-bit gray: 0" in out
    assert cli_main(argv + ["--quiet"]) == 0 and "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["prepare", "cxr14", "--split", "random"], "argument --split: random: expected one of patient, official, chexnet"),
    (["prepare", "cxr14", "--cache-size", "8"], "argument --cache-size: '8': expected 0 (no cache) or a size from 32"),
    (["prepare", "cxr14", "--label-set", "cats"], "argument --label-set: cats: expected one of findings, categories"),
    (["synth", "cxr14", "--size", "16"], "argument --size: 16: must be >= 64 and <= 1024"),
    (["synth", "cxr14", "--variant", "2019"], "argument --variant: 2019: expected one of 2017, v2020"),
])
def test_cli_refuses_bad_options_with_exit_2(tmp_path, capsys, argv, match):
    args = argv + (["--src", str(tmp_path)] if argv[0] == "prepare" else []) + ["--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        cli_main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and match in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_data_errors_are_one_paragraph(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    write_image(tmp_path / "src/00000001_000.png")
    rc = cli_main(["prepare", "cxr14", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "no label file found" in err and "Traceback" not in err and str(tmp_path / "src") in err


# ---------------------------------------------------------------------------------------- the real sample


@pytest.fixture
def real_cxr():
    if not (SHARED_CXR / L.LABEL_FILES[0]).is_file():
        pytest.skip(f"real ChestX-ray14 sample not found at {SHARED_CXR} (shared data absent)")
    return SHARED_CXR


@pytest.mark.realdata
def test_real_sample_chexnet_split(real_cxr, tmp_path):
    rep = run(real_cxr, tmp_path / "out", split="chexnet", folds=5, workers=2)
    assert rep["accounting"] == {"files_seen": 539, "files_in_records": 536, "files_skipped": 3, "adds_up": True,
                                 "ignored_medpipe_files": 0}
    assert rep["records"] == 531 and rep["patients"] == 133
    assert rep["inputs"] == {"bbox_file": 1, "image": 534, "label_file": 1, "split_list": 3, "total": 539}
    assert rep["anomaly_counts"] == {"duplicate_image": 3} and rep["skipped_counts"] == {"duplicate": 3}
    assert rep["gray_conversion"] == {"converted": 528, "by_source_mode": {"RGB": 519, "RGBA": 9}}
    lf = rep["label_file"]
    assert (lf["rows"], lf["patients"], lf["rows_with_image_found"], lf["rows_without_image"]) == (112120, 30805, 531, 111589)
    b = rep["nih_boxes"]
    assert (b["rows"], b["placed"], b["on_images_not_found"], b["aliases"]) == (984, 5, 979, {"Infiltrate": 123})
    sl = rep["split_lists"]
    assert sl["entries"] == {"train": 78468, "val": 11219, "test": 22433} and sl["patients_in_two_lists"] == 0
    assert sl["compared_with_label_file"] == 112120 and sl["label_disagreements"] == 181
    recs = records(tmp_path / "out")
    full = recs["00000001_000.png"]  # the 1024-px copy is kept over the 64-px one
    assert (full["width"], full["source"]["path"]) == (1024, "images/00000001_000.png")
    assert full["labels"][1] == 1 and full["patient"] == "00000001" and full["age"] == 57
    assert sum(len(r["nih_boxes"]) for r in recs.values()) == 5
    assert {r["fold"] for r in recs.values() if "fold" in r} == {0, 1, 2, 3, 4}
    assert rep["bias"] is not None and rep["test"]["records"] == sum(1 for r in recs.values() if "fold" not in r)


@pytest.mark.realdata
def test_real_sample_patient_split_and_official_refused(real_cxr, tmp_path):
    rep = run(real_cxr, tmp_path / "out", folds=5, workers=2, link="hardlink")
    assert rep["records"] == 531 and sum(f["patients"] for f in rep["folds"]) == 133
    assert rep["skipped_counts"] == {"duplicate": 3, "unused_list": 3}
    with pytest.raises(DataError, match="--split official: train_val_list.txt, test_list.txt not found"):
        run(real_cxr, tmp_path / "o2", split="official")
