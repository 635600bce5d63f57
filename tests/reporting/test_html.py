"""The report: says when data is synthetic, gives n and patient-level intervals, embeds and links every image."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
from PIL import Image

from medpipe.reporting.html import _pick_examples, _text, _value, build_report
from tests.conftest import make_png_dataset

PATIENTS = ("0001", "0002", "0004")


def _fake_run(run, metrics, pngs):
    (run / "eval").mkdir(parents=True)
    (run / "eval/metrics.json").write_text(json.dumps(metrics))
    for p in pngs:
        (run / p).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 20) if "curves" in p else (20, 20), (200, 10, 10)).save(run / p)


def _csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


@pytest.fixture
def work(tmp_path, request):
    """A prepared tiny dataset (synthetic when the test asks) and fake sich_cls and sich_seg runs on 3 patients."""
    from data_prep import phe_sich

    synthetic = getattr(request, "param", True)
    work = tmp_path / "work"
    make_png_dataset(tmp_path / "src")
    if synthetic:
        (tmp_path / "src" / ".medpipe-synth.json").write_text("{}")
    phe_sich.prepare(tmp_path / "src", work / "data", {"folds": 2}, workers=1, progress=None)

    slices = [(p, s) for p in PATIENTS for s in range(3)]
    labels = [int(s > 0) for _, s in slices]
    _fake_run(work / "sich_cls", {"accuracy": 0.9, "f1": 0.8, "fold": 0, "records": "val", "threshold": 0.5, "n": 9},
              ["eval/training_curves.png", "eval/confusion_matrix.png", "eval/roc.png",
               "eval/gradcam/TP_0001_01.png", "eval/gradcam/TP_0001_02.png", "eval/gradcam/TP_0002_01.png",
               "eval/gradcam/FN_0004_02.png", "eval/gradcam/TN_0001_00.png"])
    probs = [0.1, 0.9, 0.8, 0.2, 0.7, 0.6, 0.3, 0.9, 0.4]
    _csv(work / "sich_cls/predictions.csv", ["patient", "slice", "image", "probability", "prediction", "label"],
         [(p, s, "x", q, int(q >= 0.5), y) for (p, s), q, y in zip(slices, probs, labels)])
    (work / "sich_cls/run_config.json").write_text(json.dumps({"cuda": None, "settings": {
        "device": "cpu", "network_name": "resnet18", "limit": None, "amp": False, "time_limit_s": None,
        "max_epochs": 3, "patience": 8, "early_stop_metric": "val_f1", "learning_rate": 0.001, "pretrained_path": None}}))
    (work / "sich_cls/history.json").write_text(json.dumps({"epoch": [1, 2], "loss": [1.0, 0.5], "lr": [1e-3, 1e-3]}))

    _fake_run(work / "sich_seg", {"dice": 0.5, "iou": 0.33, "sensitivity": 0.6, "n_cases": 9, "fold": 0, "records": "val",
                                  "seg_to_cls": {"area_threshold": 10, "selection": "cross-fitted", "accuracy": 5 / 9,
                                                 "recall": 0.5}},
              ["eval/training_curves.png", "eval/pixel_confusion.png", "eval/overlays/TP_0001_01.png",
               "eval/overlays/FP_0002_00.png", "eval/overlays/FN_0004_02.png"])
    areas = [0, 40, 12, 30, 50, 0, 0, 25, 8]
    seg = [(p, s, "x", a, 20 * y, 0.8 if y and a else ("0.0" if y or a else ""), y, min(a, 20 * y), a - min(a, 20 * y),
            20 * y - min(a, 20 * y)) for (p, s), a, y in zip(slices, areas, labels)]
    _csv(work / "sich_seg/predictions.csv",
         ["patient", "slice", "image", "pred_area", "target_area", "dice", "label", "tp", "fp", "fn"], seg)
    # cross-fitted: patients 0001 and 0004 scored with A = 20 (chosen on 0002), 0002 with A = 10: 5 of 9 right
    # (in-sample, A = 10 everywhere: 6 of 9)
    thr = {"0001": 20, "0002": 10, "0004": 20}
    _csv(work / "sich_seg/eval/seg_to_cls_predictions.csv",
         ["patient", "slice", "pred_area", "prediction", "label", "area_threshold"],
         [(p, s, a, int(a >= thr[p]), y, thr[p]) for (p, s), a, y in zip(slices, areas, labels)])
    (work / "sich_seg/eval/seg_to_cls_metrics.json").write_text(json.dumps({
        "selection": "cross-fitted", "area_threshold": 10, "metric": "f1",
        "folds": [{"patients": ["0001", "0004"], "area_threshold": 20, "n": 6},
                  {"patients": ["0002"], "area_threshold": 10, "n": 3}]}))
    return work


def _visible(text: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)


def test_report_says_synthetic_shows_n_and_intervals_and_embeds_every_image(work):
    t0 = time.perf_counter()
    paths = build_report(work, work / "report", params={"src": None, "device": None, "time_limit_s": None,
                                                         "synth_patients": 5, "fold": 0})
    took = time.perf_counter() - t0
    text = open(paths["html"]).read()
    seen = _visible(text)
    # synthetic: a banner at the top, and the reference column says it is real data, not comparable
    assert seen.index("Synthetic data.") < seen.index("<h2>Dataset</h2>")
    assert "not the real dataset" in seen and "REAL data: not comparable" in seen
    assert "synthetic data from medpipe synth" in seen
    # the evaluated set beside each metrics table, and patient-level intervals
    assert "Evaluated on validation fold 0: 9 slices of 3 patients (0001, 0002, 0004), 6 positive." in seen
    assert re.search(r"<td class=\"num\">0\.900 \(0\.\d{2}–1\.00\)</td>", seen)  # sich_cls accuracy with its CI
    dice = re.search(r"Dice \(global\)</td><td class=\"num\">0\.500 \((\d\.\d+)–(\d\.\d+)\)", seen)
    assert dice and float(dice.group(1)) <= 0.5 <= float(dice.group(2))
    assert "patient-level bootstrap (1000 resamples of the 3 patients" in seen and "crude" in seen
    # settings in words: the device used, no Python literals, unset options left out
    assert "device</b>: auto (used: cpu)" in seen and "<b>device</b>: cpu" in seen
    assert "limit" not in seen.replace("time_limit_s", "") and "pretrained" not in seen
    for word in ("None", "True", "False", "n/a"):
        assert not re.search(rf"\b{word}\b", re.sub(r"<[^>]+>", " ", seen)), word
    # one story for the segmentation-derived classifier: cross-fitted in both places, in-sample labelled
    assert "A = 20 px for patients 0001, 0004; A = 10 px for patients 0002" in seen
    assert "(sich_seg, nnU-Net-style DynUNet), area &gt;= A" in seen and "area &gt;= 10 px, in-sample" in seen
    cmp = seen[seen.index("Slice classifiers on the same validation slices"):]
    assert re.search(r"area &gt;= A<br><small>A chosen on the other half of the patients \(cross-fitted\)</small></td>"
                     r"<td class=\"num\">9</td><td class=\"num\">0\.556", cmp)  # the section's number, same protocol
    assert "Not run (no eval/metrics.json)" in seen  # sich_det absent: said, not hidden
    # every image embedded, and each one in the Markdown twin as a file that exists
    assert not re.findall(r'src="(?!data:image/png;base64,)', text)
    md = open(paths["md"]).read()
    links = re.findall(r"\]\((images/[^)]+)\)", md)
    files = sorted(p.name for p in (work / "report/images").iterdir())
    assert text.count("data:image/png;base64,") == len(links) == len(files) == 13
    assert sorted(link.split("/")[1] for link in links) == files
    assert 'class="figs wide"' in text  # training curves across the page
    assert took < 5  # 0.3 s here; the report must not pull in scikit-learn or matplotlib

    shutil.rmtree(work / "sich_seg")
    text2 = open(build_report(work, work / "report")["html"]).read()
    assert "Fewer than two slice classifiers" in text2


@pytest.mark.parametrize("work", [False], indirect=True)
def test_real_data_has_no_banner_and_names_the_reference_caveat(work):
    seen = _visible(open(build_report(work, work / "report", params={"src": "/data/PHE", "synth_size": 128,
                                                                      "download_dir": "x"})["html"]).read())
    assert "Synthetic data." not in seen and "the real download" in seen
    assert "seed project (reference)" in seen and "leaks patients" in seen and "optimistic" in seen
    assert "synth_size" not in seen and "download_dir" not in seen  # not used when --src is given


def test_examples_spread_over_outcomes_and_patients(tmp_path):
    names = ["TP_0001_01.png", "TP_0001_02.png", "TP_0002_05.png", "FP_0001_03.png", "FN_0003_01.png", "TN_0001_00.png"]
    files = [tmp_path / n for n in names]
    picked = [p.name for p in _pick_examples(files, 4)]
    assert picked == ["TP_0001_01.png", "FP_0001_03.png", "FN_0003_01.png", "TN_0001_00.png"]
    picked = [p.name for p in _pick_examples(files, 5)]
    assert picked[4] == "TP_0002_05.png"  # a second true positive from another patient, not the adjacent slice
    assert [p.name for p in _pick_examples([tmp_path / "0001_03.png", tmp_path / "0002_01.png"], 1)] == ["0001_03.png"]


@pytest.mark.parametrize("value, text", [(None, "—"), (True, "yes"), (False, "no"), (0.001, "0.001"),
                                         ([64, 64], "64 × 64"), ("cpu", "cpu")])
def test_values_in_words(value, text):
    assert _text(value) == text


@pytest.mark.parametrize("v, ci, text", [(0.8123, (0.7, 0.9), "0.812 (0.70–0.90)"), (None, None, "—"),
                                         (0.9995, (0.9991, 0.9998), "1.000 (0.999–1.000)"), (0.5, (None, None), "0.500 (0/0)")])
def test_metric_with_interval(v, ci, text):
    assert _value(v, ci) == text


def test_kfold_localisation_and_prevalence_sections(tmp_path):
    """A multi-label run with one model per fold: the fold table with mean ± sd, the CAM-vs-control table beside
    the published values, the per-class prevalence and train:test tables; details of the chosen fold."""
    from medpipe.evaluation.kfold import summarize_folds

    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    by = {p: {"images": n, "positives": {"Cardiomegaly": c, "Nodule": 1},
              "prevalence": {"Cardiomegaly": c / n, "Nodule": 1 / n}} for p, n, c in
          (("fold 0", 10, 2), ("fold 1", 10, 3), ("test", 5, 0))}
    (data / "prepare_report.json").write_text(json.dumps({
        "dataset": "cxr14", "records": 25, "patients": 9, "source": {"path": "x", "synthetic": True},
        "input": {"modality": "CR"}, "options": {"seed": 1},
        "folds": [{"fold": 0, "patients": 4, "records": 10}, {"fold": 1, "patients": 3, "records": 10}],
        "prevalence": {"parts": list(by), "by_part": by},
        "bias": {"images_ratio": 4.0, "findings_ratio": 7.0, "per_class": {
            "Cardiomegaly": {"train": 5, "test": 0, "ratio": None, "prevalence_train": 0.25, "prevalence_test": 0.0,
                             "prevalence_ratio": None},
            "Nodule": {"train": 2, "test": 1, "ratio": 2.0, "prevalence_train": 0.1, "prevalence_test": 0.2,
                       "prevalence_ratio": 0.5}}}}))
    acc = {m: {c: {str(t): v for t in (0.1, 0.5)} for c, v in (("Cardiomegaly", a), ("all", a / 2))}
           for m, a in (("cam@0.5", 0.75), ("control@0.5", 0.125))}
    for k, auc in ((0, 0.9), (1, 0.7)):
        run = work / "cxr14_cls" / f"fold_{k}"
        _fake_run(run, {"kind": "multilabel", "auroc_mean": auc, "n": 10, "fold": k, "records": "val",
                        "auroc_per_class": {"Cardiomegaly": auc, "Nodule": None if k == 0 else 0.6}},
                  ["eval/roc.png", f"eval/cam/Cardiomegaly_0000000{k}_000.png"])
        (run / "eval/localization.json").write_text(json.dumps({
            "cases": 4 + k, "images_with_boxes": 3, "layer": f"layer_of_fold_{k}", "thresholds": [0.1, 0.5],
            "cases_per_class": {"Cardiomegaly": 4 + k}, "accuracy_iobb": acc,
            "reference": {"source": "Wang", "accuracy_iobb_0.5": {"Cardiomegaly": 0.88}}}))
    summarize_folds(work / "cxr14_cls", [0, 1])
    build_report(work, tmp_path / "rep", pipeline="chest_xray", params={"fold": 1}, data_dir=data,
                 bundles=["cxr14_cls"])
    md = (tmp_path / "rep/report.md").read_text()
    assert "Cross-validation: 2 models" in md
    assert "| AUROC, mean over classes | 0.900 | 0.700 | 0.800 ± 0.141 |" in md
    assert "| Nodule | — | 0.600 | 0.600 |" in md and "Nodule on fold 0" in md  # undefined: left out, named
    assert "show the model validated on fold 1" in md and "layer_of_fold_1" in md and "layer_of_fold_0" not in md
    assert "| Cardiomegaly | 5 | 0.750 | 0.125 | 0.88 |" in md and "| all boxed findings | 5 | 0.375 | 0.062 | — |" in md
    assert "REAL data: not comparable" in md
    assert "| Cardiomegaly | 2 (20.0 %) | 3 (30.0 %) | 0 (0.0 %) |" in md
    assert "| Nodule | 2 | 1 | 2 | 10.00 % | 20.00 % | 0.5 |" in md and "4.00 : 1 in images" in md
    html_text = (tmp_path / "rep/report.html").read_text()
    assert 'class="figs large"' in html_text  # the ROC figure at full size


def test_applied_multilabel_model_gets_a_per_patient_table(tmp_path):
    """An `infer` step's predictions of a model trained elsewhere (e.g. haemorrhage subtypes on PHE-SICH): per
    patient of the dataset (joined on the image file name), the highest probability and the slices above threshold."""
    import json as _json

    from medpipe.reporting.html import _applied_sections, _Doc

    work, data = tmp_path / "work", tmp_path / "data"
    (work / "subtypes").mkdir(parents=True)
    (work / "sich_cls" / "models").mkdir(parents=True)  # a training run's predictions are not an applied model
    (work / "sich_cls" / "predictions.csv").write_text("patient,image,p_a,pred_a,p_b,pred_b\nx,/i/x.png,0.1,0,0.2,0\n")
    (work / "subtypes" / "predictions.csv").write_text(
        "patient,slice,image,p_any,pred_any,p_sdh,pred_sdh\n"
        "0001_00,0,/d/images/0001_00.png,0.9,1,0.2,0\n0001_01,1,/d/images/0001_01.png,0.6,1,0.7,1\n"
        "0002_00,0,/d/images/0002_00.png,0.1,0,0.05,0\n")
    data.mkdir()
    (data / "datalist.json").write_text(_json.dumps({"training": [
        {"image": "images/0001_00.png", "patient": "0001", "label": 1, "fold": 0},
        {"image": "images/0001_01.png", "patient": "0001", "label": 0, "fold": 0},
        {"image": "images/0002_00.png", "patient": "0002", "label": 0, "fold": 1}]}))
    (tmp_path / "img").mkdir()
    doc = _Doc(tmp_path / "img")
    _applied_sections(doc, work, data)
    md = "\n".join(doc.M)
    assert "Applied model: subtypes (any, sdh)" in md and "sich_cls" not in md
    assert "| 0001 | 2 | 1 / 2 | 0.90 (2) | 0.70 (1) |" in md
    assert "| 0002 | 1 | 0 / 1 | 0.10 (0) | 0.05 (0) |" in md


def test_recipes_of_a_bundle_are_compared_side_by_side(work):
    """work/recipes/<bundle>/<name>/ runs get one table: what differs, epochs, training time, headline metrics."""
    base = {"fold": 0, "time_limit_s": 780, "image_size": 128, "filters": None, "amp": False, "lr_power": 0.0,
            "output_dir": "differs but is a path", "learning_rate": 0.002}
    for name, over, dice, s2c in (("a_old", {}, 0.256, 0.951), ("b_fast", {"amp": True, "filters": [16, 32]}, 0.41, 0.97)):
        run = work / "recipes" / "sich_seg" / name
        _fake_run(run, {"dice": dice, "iou": 0.2, "sensitivity": 0.3, "specificity": 0.999, "dice_per_case_mean": 0.25,
                        "seg_to_cls": {"accuracy": s2c, "recall": 0.74, "f1": 0.85}}, [])
        (run / "run_config.json").write_text(json.dumps({"settings": {**base, **over, "output_dir": str(run)}}))
        (run / "history.json").write_text(json.dumps({"epoch": [1, 2, 3], "train_s": [100.0, 110.0, 90.0]}))
    (work / "recipes" / "sich_seg" / "c_unevaluated").mkdir()  # no eval/metrics.json: not a row
    seen = _visible(open(build_report(work, work / "report")["html"]).read())
    sec = seen[seen.index("<h3>Recipes compared</h3>"):]
    sec = sec[:sec.index("</table>")]
    rows = re.findall(r"<tr><td>(.*?)</tr>", sec)
    # the section's own run (no run_config.json time limit here) first, then the recipes
    assert len(rows) == 3 and rows[0].startswith("this section&#x27;s run") and "3 recipes of sich_seg" in sec
    assert "DIFFERENT" not in sec
    rows = rows[1:]
    # only the settings that differ, in words; paths and equal settings left out
    assert "a_old<br><small>filters default; amp no<" in rows[0]
    assert "b_fast<br><small>filters 16, 32; amp yes<" in rows[1]
    assert "learning_rate" not in sec and "output_dir" not in sec and "image_size" not in sec
    assert "<td class=\"num\">3</td><td class=\"num\">5.0 min</td><td class=\"num\">0.256" in rows[0]
    assert "0.410" in rows[1] and "0.970" in rows[1] and "seg-&gt;cls accuracy" in sec
