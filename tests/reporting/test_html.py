"""The report references only files that exist and shows what the stages wrote."""

from __future__ import annotations

import json
import re
import shutil

from PIL import Image

from medpipe.reporting.html import build_report
from tests.conftest import make_png_dataset


def _fake_run(run, metrics, pngs):
    (run / "eval").mkdir(parents=True)
    (run / "eval/metrics.json").write_text(json.dumps(metrics))
    for p in pngs:
        (run / p).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), (200, 10, 10)).save(run / p)


def test_report_is_self_contained_and_complete(tmp_path):
    from data_prep import phe_sich

    work = tmp_path / "work"
    make_png_dataset(tmp_path / "src")
    phe_sich.prepare(tmp_path / "src", work / "data", {"folds": 2}, workers=1, progress=None)
    _fake_run(work / "sich_cls", {"accuracy": 0.9, "f1": 0.8, "fold": 0},
              ["eval/confusion_matrix.png", "eval/roc.png", "eval/gradcam/TP_0001_01.png"])
    (work / "sich_cls/predictions.csv").write_text(
        "patient,slice,image,probability,prediction,label\n0001,1,x,0.9,1,1\n0001,0,x,0.2,0,0\n")
    _fake_run(work / "sich_seg", {"dice": 0.5, "iou": 0.33, "seg_to_cls": {"area_threshold": 10, "selection": "cross-fitted",
                                                                           "accuracy": 1.0}},
              ["eval/pixel_confusion.png", "eval/overlays/0001_01.png"])
    (work / "sich_seg/predictions.csv").write_text(
        "patient,slice,image,pred_area,target_area,dice,label\n0001,1,x,40,50,0.8,1\n0001,0,x,0,0,,0\n")
    paths = build_report(work, work / "report", params={"src": None})
    text = open(paths["html"]).read()
    assert not re.findall(r'src="(?!data:image/png;base64,)', text)  # every image embedded
    assert text.count("data:image/png;base64,") == 5
    assert "1796" not in text and "16 records from 5 patients" in text
    assert "Not run (no eval/metrics.json)" in text  # sich_det absent: said, not hidden
    assert "Slice classifier (sich_cls, ResNet)" in text and "(sich_seg, nnU-Net-style DynUNet), area &gt;= A" in text
    assert "leaks patients" in text
    md = open(paths["md"]).read()
    for link in re.findall(r"\]\((images/[^)]+)\)", md):
        assert (work / "report" / link).is_file()
    shutil.rmtree(work / "sich_seg")
    text2 = open(build_report(work, work / "report")["html"]).read()
    assert "Fewer than two slice classifiers" in text2
