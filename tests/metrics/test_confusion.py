"""Metrics from a confusion matrix (medpipe.metrics.confusion) and `medpipe metrics confusion`."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score

from medpipe.errors import UserError
from medpipe.metrics.confusion import expand_confusion, metrics_from_confusion, read_confusion_csv
from medpipe.metrics.multiclass import multiclass_metrics
from tests.conftest import REPO

# The seed project's case: 7 classes, class 4 has no test slice, the model collapsed towards class 1
# (~42 % of the predictions), ~19 % of class 0 and 0.4 % of class 6 correct.
SEED = np.array([
    [40, 102, 20, 15, 5, 10, 20],
    [5, 144, 4, 3, 0, 2, 2],
    [10, 40, 40, 10, 2, 10, 8],
    [5, 30, 10, 33, 2, 15, 5],
    [0, 0, 0, 0, 0, 0, 0],
    [8, 30, 20, 15, 3, 42, 12],
    [30, 60, 40, 35, 4, 80, 1],
])


def test_seed_matrix_both_conventions():
    m = metrics_from_confusion(SEED)
    assert m["absent_classes"] == ["4"] and m["num_classes"] == 7 and m["n"] == SEED.sum()
    assert m["per_class"]["4"]["sensitivity"] is None and m["per_class"]["4"]["support"] == 0
    assert round(m["per_class"]["0"]["sensitivity"], 2) == 0.19
    assert round(m["per_class"]["6"]["sensitivity"], 3) == 0.004
    assert 0.40 <= SEED[:, 1].sum() / SEED.sum() <= 0.45
    # honest: mean over the 6 present classes; the other convention: absent counted as 0 over 7
    assert m["sensitivity"] == pytest.approx(0.297 * 7 / 6, abs=5e-4)
    assert round(m["sensitivity"], 2) == 0.35
    assert round(m["macro_absent_as_zero"]["sensitivity"], 3) == 0.297
    assert m["balanced_accuracy"] == m["sensitivity"]

    y, p = expand_confusion(SEED)
    labels = list(range(7))
    assert m["accuracy"] == pytest.approx(np.mean(y == p))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, p, labels=labels))
    assert m["kappa_quadratic"] == pytest.approx(cohen_kappa_score(y, p, labels=labels, weights="quadratic"))
    # "absent as 0" is what scikit-learn's macro over all labels with zero_division=0 gives
    kw = dict(labels=labels, average="macro", zero_division=0)
    assert m["macro_absent_as_zero"]["sensitivity"] == pytest.approx(recall_score(y, p, **kw))
    assert m["macro_absent_as_zero"]["precision"] == pytest.approx(precision_score(y, p, **kw))
    assert m["macro_absent_as_zero"]["f1"] == pytest.approx(f1_score(y, p, **kw))


@pytest.mark.parametrize("cm", [
    [[5, 1], [2, 4]],
    [[3, 1, 0], [1, 3, 0], [0, 0, 0]],
    [[10, 0, 0], [0, 0, 7], [1, 2, 3]],
])
def test_matches_multiclass_metrics_on_expanded_vectors(cm):
    m = metrics_from_confusion(cm, ["a", "b", "c"][:len(cm)])
    y, p = expand_confusion(cm)
    ref = multiclass_metrics(y, np.eye(len(cm))[p], ["a", "b", "c"][:len(cm)], y_pred=p)
    assert m["confusion_matrix"] == ref["confusion_matrix"] == [list(r) for r in cm]
    for key in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1", "kappa"):
        assert m[key] == ref[key], key
    assert "auroc" not in m and all("auroc" not in r for r in m["per_class"].values())
    json.dumps(m)  # JSON-ready
    if not m["absent_classes"]:
        assert m["macro_absent_as_zero"]["sensitivity"] == pytest.approx(m["sensitivity"])


@pytest.mark.parametrize("cm, msg", [
    ([[1, 2, 3], [4, 5, 6]], "square"),
    ([[3]], "at least 2"),
    ([[1, -1], [0, 2]], "negative"),
    ([[1, 0.5], [0, 2]], "whole-number"),
    ([[0, 0], [0, 0]], "at least one count"),
    ([[10**8, 0], [0, 1]], "too large to expand"),
])
def test_bad_matrices(cm, msg):
    with pytest.raises(ValueError, match=msg):
        metrics_from_confusion(cm)


def test_wrong_number_of_names():
    with pytest.raises(ValueError, match="class names"):
        metrics_from_confusion([[1, 0], [0, 1]], ["a", "b", "c"])


@pytest.mark.parametrize("text, names", [
    ("5,1\n2,4\n", None),
    ("5;1\n2;4\n", None),
    ("5\t1\n2\t4\n", None),
    ("5 1\n2 4\n", None),
    (",a,b\na,5,1\nb,2,4\n", ["a", "b"]),
    ("true\\pred;a;b\na;5;1\nb;2;4\n", ["a", "b"]),
    ("a,b\n5,1\n2,4\n", ["a", "b"]),             # header row only
    ("a,5,1\nb,2,4\n", ["a", "b"]),              # first column only
    ("truth,0,1\n0,5,1\n1,2,4\n", ["0", "1"]),   # numeric class names on both sides
    ("\ufeff# a comment\n\"a\",\"b\"\n5.0,1\n\n2,4\n", ["a", "b"]),
])
def test_read_forms(tmp_path, text, names):
    f = tmp_path / "cm.csv"
    f.write_text(text, encoding="utf-8")
    m, got = read_confusion_csv(f)
    assert m.tolist() == [[5, 1], [2, 4]] and m.dtype == np.int64
    assert got == names


@pytest.mark.parametrize("text, msg", [
    ("", "empty"),
    ("1,2,3\n4,5,6\n", "2 rows x 3 columns"),
    ("1,2\n3\n", "different numbers"),
    ("1,-2\n3,4\n", "negative"),
    ("1,2.5\n3,4\n", "not a whole count"),
    (",a,b\na,1,x\nb,3,4\n", "'x', not a number"),
    (",a,b\nb,1,2\na,3,4\n", "must be the same classes"),
    (",a,b,c\na,1,2\nb,3,4\n", "header row has 4 cells"),
    ("a,a\n1,2\n3,4\n", "more than once"),
    ("0,0\n0,0\n", "every count is 0"),
])
def test_read_refuses(tmp_path, text, msg):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(UserError, match=msg) as e:
        read_confusion_csv(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_read_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_confusion_csv(tmp_path / "nope.csv")


def _seed_csv(path):
    lines = ["true\\pred," + ",".join(map(str, range(7)))]
    lines += [f"{i}," + ",".join(map(str, r)) for i, r in enumerate(SEED.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_prints_both_conventions_and_writes_json(tmp_path, capsys):
    from medpipe.cli import main

    f = _seed_csv(tmp_path / "seed.csv")
    out = tmp_path / "m.json"
    assert main(["metrics", "confusion", str(f), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "absent: no true sample" in text
    assert "macro over the 6 present classes: sensitivity 0.347" in text
    assert "absent classes counted as 0, over all 7 classes (the convention some papers use): sensitivity 0.297" in text
    assert "Cohen's kappa" in text and "balanced accuracy" in text
    saved = json.loads(out.read_text())
    assert saved["absent_classes"] == ["4"] and round(saved["macro_absent_as_zero"]["sensitivity"], 3) == 0.297


def test_cli_classes_option(tmp_path, capsys):
    from medpipe.cli import main

    f = tmp_path / "cm.csv"
    f.write_text("5,1,0\n2,4,0\n0,0,0\n")
    assert main(["metrics", "confusion", str(f), "--classes", "none,epidural,subdural"]) == 0
    assert "subdural" in capsys.readouterr().out
    assert main(["metrics", "confusion", str(f), "--classes", "a,b"]) == 2
    assert "--classes names 2 classes" in capsys.readouterr().err
    f.write_text(",x,y\nx,1,2\ny,3,4\n")
    assert main(["metrics", "confusion", str(f), "--classes", "a,b"]) == 2
    assert "differs from the class names" in capsys.readouterr().err


def test_cli_bad_file_is_one_paragraph(tmp_path, capsys):
    from medpipe.cli import main

    f = tmp_path / "cm.csv"
    f.write_text("1,2,3\n4,5,6\n")
    assert main(["metrics", "confusion", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medpipe metrics: error:") and str(f) in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["metrics", "--help"], ["metrics", "confusion", "--help"]])
def test_help_is_light_and_has_an_example(argv):
    code = ("import sys, runpy; sys.argv = ['medpipe'] + %r\n"
            "try:\n    runpy.run_module('medpipe', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'monai', 'sklearn', 'pandas', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n" % argv)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout[-500:]
    assert "examples:" in out.stdout and "medpipe metrics confusion" in out.stdout
