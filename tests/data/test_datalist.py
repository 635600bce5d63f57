import json
from pathlib import Path

import pytest

from medpipe.data.datalist import balanced_sampler, class_weights, load_split
from medpipe.errors import DataError


@pytest.fixture
def prepared(tmp_path):
    recs = [{"image": f"images/{p}_{s}.png", "mask": f"masks/{p}_{s}.png", "patient": p, "slice": s,
             "label": int(s == 1), "boxes": [[1, 2, 3, 4]] if s == 1 else [], "fold": f}
            for f, p in enumerate(["a", "b", "c"]) for s in range(3)]
    test = [{"image": "images/t_0.png", "mask": "masks/t_0.png", "patient": "t", "slice": 0, "label": 0, "boxes": []}]
    (tmp_path / "datalist.json").write_text(json.dumps({"num_folds": 3, "training": recs, "test": test}))
    return tmp_path


@pytest.mark.parametrize("split,patients", [("train", {"b", "c"}), ("val", {"a"}), ("trainval", {"a", "b", "c"}),
                                            ("test", {"t"}), ("all", {"a", "b", "c", "t"})])
def test_splits_come_from_the_datalist(prepared, split, patients):
    recs = load_split(prepared, fold=0, split=split)
    assert {r["patient"] for r in recs} == patients
    assert all(r["image"].startswith(str(prepared.resolve())) for r in recs)
    assert all("boxes" not in r for r in recs)  # lists dropped so batches collate


def test_segmentation_task_moves_keys(prepared):
    r = load_split(prepared, fold=1, split="val", task="segmentation")[1]
    assert r["label"].endswith("masks/b_1.png") and r["slice_label"] == 1


@pytest.mark.parametrize("kw,match", [({"fold": 3}, "folds 0..2"), ({"split": "nope"}, "expected one of")])
def test_errors(prepared, kw, match):
    with pytest.raises(DataError, match=match):
        load_split(prepared, **kw)


def test_missing_datalist_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="make demo"):
        load_split(tmp_path / "nothing")


def test_class_weights_and_sampler():
    data = [{"label": 0}] * 8 + [{"label": 1}] * 2
    w = class_weights(data)
    assert w[1] / w[0] == pytest.approx(4.0) and float(w.mean()) == pytest.approx(1.0)
    drawn = [data[i]["label"] for i in balanced_sampler(data, seed=0)]
    assert len(drawn) == 10 and 2 <= sum(drawn) <= 8  # positives drawn far more often than 2/10
    drawn_big = [data[i]["label"] for _ in range(50) for i in balanced_sampler(data, seed=_)]
    assert 0.4 < sum(drawn_big) / len(drawn_big) < 0.6


@pytest.fixture
def declared(prepared):
    dl = json.loads((prepared / "datalist.json").read_text())
    dl["tasks"] = {"label": {"kind": "binary", "class_names": ["no", "yes"]},
                   "labels": {"kind": "multilabel", "class_names": ["x", "y"]}}
    dl["input"] = {"channels": 1, "window": [40, 80], "slice_pattern": r"^(?P<patient>\w)_(?P<slice>\d)$"}
    for r in dl["training"] + dl["test"]:
        r["labels"] = [r["label"], 1 - r["label"]]
    (prepared / "datalist.json").write_text(json.dumps(dl))
    return prepared


def test_label_kinds_and_inputs_come_from_the_header(declared, tmp_path):
    from medpipe.data.datalist import check_datalist, input_spec, label_task

    assert label_task(declared, "labels") == {"key": "labels", "kind": "multilabel", "class_names": ["x", "y"]}
    assert input_spec(declared)["window"] == [40, 80] and check_datalist(declared, "label")["kind"] == "binary"
    with pytest.raises(DataError, match="has no 'mask' labels .*label \\(binary\\), labels \\(multilabel\\)"):
        label_task(declared, "mask")
    old = tmp_path / "old"
    old.mkdir()
    (old / "datalist.json").write_text(json.dumps({"training": []}))
    with pytest.raises(DataError, match="older medpipe"):
        label_task(old, "label")


def test_multilabel_vectors_reach_the_engine(declared):
    r = load_split(declared, fold=0, split="val", label_key="labels")[1]
    assert r["label"].dtype.name == "float32" and r["label"].tolist() == [1.0, 0.0] and r["labels"] == [1, 0]
    w = class_weights(load_split(declared, fold=0, split="trainval", label_key="labels"))
    assert w.tolist() == pytest.approx([2.0, 0.5])  # negatives / positives per label


@pytest.mark.parametrize("records,fold,patients", [("val", 1, {"b"}), ("fold:2", 0, {"c"}), ("test", 0, {"t"}),
                                                   ("all", 0, {"a", "b", "c", "t"})])
def test_select_records_for_evaluation(declared, records, fold, patients):
    from medpipe.data.datalist import select_records

    assert {r["patient"] for r in select_records(declared, records, fold, "label")} == patients


@pytest.mark.parametrize("records", ["fold:3", "fold:x", "train", ""])
def test_bad_records(declared, records):
    from medpipe.data.datalist import select_records

    with pytest.raises(DataError, match="--records"):
        select_records(declared, records)


def test_a_checkpoint_is_evaluated_only_on_the_same_labels(declared):
    from medpipe.data.datalist import check_same_labels

    assert check_same_labels(declared, "label", {"task": "binary", "class_names": ["no", "yes"]})["kind"] == "binary"
    with pytest.raises(DataError, match="trained on binary \\['neg', 'pos'\\]"):
        check_same_labels(declared, "label", {"task": "binary", "class_names": ["neg", "pos"]})


def test_inference_inputs_are_named_by_the_checkpoints_pattern(tmp_path):
    from PIL import Image

    from medpipe.data.inference import list_inputs

    for name in ("a_3.png", "zz.png", ".hidden/b_1.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("L", (8, 8)).save(tmp_path / name)
    spec = {"slice_pattern": r"^(?P<patient>\w)_(?P<slice>\d)$", "patient_format": None}
    recs = list_inputs(tmp_path, spec)
    assert [(r["patient"], r["slice"]) for r in recs] == [("a", 3), ("zz", 1)]
    assert [(r["patient"], r["slice"]) for r in list_inputs(tmp_path)] == [("a_3", 0), ("zz", 1)]
    with pytest.raises(DataError, match="declares no HU window"):
        nii = tmp_path / "v.nii.gz"
        nii.write_bytes(b"")
        list_inputs(nii, {"window": None})


def test_ct_dicom_series_for_a_model_trained_on_named_windows(tmp_path):
    """A folder of CT DICOMs for a multi-window model: HU windowed per channel as in training, slices grouped by
    series and ordered along the patient axis whatever the file order, neighbours taken from the series."""
    import numpy as np

    from medpipe.data.inference import list_inputs
    from medpipe.io.ct import window_to_uint8
    from medpipe.io.ct_dicom import CT_WINDOWS, write_ct_series

    hu = np.stack([np.full((16, 16), v, np.float32) for v in (0.0, 40.0, 80.0, 120.0)])
    names = [f"f{i}.dcm" for i in (3, 1, 2, 0)]  # file names out of z order
    write_ct_series(tmp_path / "s", hu, patient_id="P1", study_uid="1.2.3", series_uid="1.2.3.4", file_names=names)
    spec = {"channels": 3, "window_channels": ["brain", "subdural", "soft_tissue"],
            "windows": {k: list(v) for k, v in CT_WINDOWS.items()}}
    recs = list_inputs(tmp_path / "s", spec)
    assert [r["slice"] for r in recs] == [0, 1, 2, 3] and {r["volume"] for r in recs} == {"1.2.3.4"}
    assert recs[0]["patient"] == "P1" and recs[0]["image"].shape == (16, 16, 3)
    levels = [float(r["image"][0, 0, 0]) for r in recs]  # brain window of 0, 40, 80, 120 HU in z order
    assert levels == [float(window_to_uint8(np.array([v]), CT_WINDOWS["brain"])[0]) for v in (0, 40, 80, 120)]
    assert recs[0]["image_prev"] is recs[0]["image"] and recs[1]["image_prev"] is recs[0]["image"]
    assert recs[-1]["image_next"] is recs[-1]["image"]


def test_balanced_sampler_for_multilabel_draws_rare_labels_as_often():
    import numpy as np
    import pytest

    from medpipe.data.datalist import balanced_sampler, train_sampler
    from medpipe.errors import UserError

    # 80 negatives, 18 with label 0, 2 with labels 0 and 1 (label 1 is rare)
    data = [{"label": [0, 0]}] * 80 + [{"label": [1, 0]}] * 18 + [{"label": [1, 1]}] * 2
    w = balanced_sampler(data, seed=0).weights.numpy()
    assert w[0] == pytest.approx(1 / 80) and w[80] == pytest.approx(1 / 20) and w[98] == pytest.approx(1 / 2)
    draws = np.asarray(list(train_sampler(data, "balanced", seed=0)) * 1)
    groups = np.where(draws >= 98, 2, np.where(draws >= 80, 1, 0))
    assert abs(np.mean(groups == 2) - 1 / 3) < 0.15  # the rare label as often as the other groups
    assert train_sampler(data, "shuffle") is None
    with pytest.raises(UserError, match="--sampling balance: choose shuffle"):
        train_sampler(data, "balance")


def test_inference_slices_get_their_stack_neighbours_for_2_5d(tmp_path):
    from PIL import Image

    from medpipe.data.inference import list_inputs

    for name in ("0007_00.png", "0007_01.png", "0007_02.png", "0007_05.png", "0009_01.png"):
        Image.new("L", (8, 8)).save(tmp_path / name)
    spec = {"slice_pattern": r"^(?P<patient>\d{1,4})_(?P<slice>\d{1,3})$", "patient_format": "{:04d}"}
    recs = {(r["patient"], r["slice"]): r for r in list_inputs(tmp_path, spec)}
    name = lambda r, k: Path(r[k]).name  # noqa: E731
    mid = recs[("0007", 1)]
    assert (name(mid, "image_prev"), name(mid, "image_next")) == ("0007_00.png", "0007_02.png")
    end = recs[("0007", 2)]  # slice 3 is missing: the slice itself stands in, never slice 5
    assert name(end, "image_next") == "0007_02.png" and name(end, "image_prev") == "0007_01.png"
    alone = recs[("0009", 1)]
    assert name(alone, "image_prev") == name(alone, "image_next") == "0009_01.png"


def test_segmentation_sampler_draws_slices_with_foreground_at_the_asked_share(tmp_path):
    import numpy as np
    from PIL import Image
    from torch.utils.data import RandomSampler, WeightedRandomSampler

    from medpipe.data.datalist import foreground_flags, segmentation_sampler
    from medpipe.errors import UserError

    recs = []
    for i in range(20):  # 3 of 20 slices have foreground; the flag is read from the file when not recorded
        m = np.zeros((8, 8), np.uint8)
        if i < 3:
            m[2:4, 2:4] = 255
        Image.fromarray(m).save(tmp_path / f"m{i}.png")
        recs.append({"label": str(tmp_path / f"m{i}.png"), **({"mask_label": int(i < 3)} if i % 2 else {})})
    assert foreground_flags(recs, "mask_label") == [i < 3 for i in range(20)]
    assert segmentation_sampler(recs) is None  # the loader shuffles: every slice once
    uni = segmentation_sampler(recs, samples_per_epoch=50, seed=1)
    assert isinstance(uni, RandomSampler) and len(list(uni)) == 50
    s = segmentation_sampler(recs, 0.5, samples_per_epoch=4000, flag_key="mask_label", seed=3)
    assert isinstance(s, WeightedRandomSampler)
    drawn = list(s)
    share = np.mean([i < 3 for i in drawn])
    assert len(drawn) == 4000 and abs(share - 0.5) < 0.03  # 3/20 = 0.15 when drawn uniformly
    assert drawn != list(segmentation_sampler(recs, 0.5, samples_per_epoch=4000, seed=4))
    for bad in (0, 1.0, 1.5):
        with pytest.raises(UserError, match="between 0 and 1"):
            segmentation_sampler(recs, bad)
    with pytest.raises(UserError, match="none of the 2 training slices"):
        segmentation_sampler(recs[10:12], 0.5)
    with pytest.raises(DataError, match="missing.png: cannot read the mask"):
        foreground_flags([{"label": str(tmp_path / "missing.png")}])
