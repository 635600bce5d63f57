import json

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
