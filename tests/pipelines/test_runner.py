"""Pipeline runner: steps run in order, skip when up to date, --from / --only, failures stop cleanly."""

from __future__ import annotations

import json

import pytest

from medpipe.errors import UserError
from medpipe.pipelines.runner import PipelineRunner, load_pipeline, resolve
from tests.conftest import REPO

PIPE = """
name: tiny
params:
  src: null
  work_dir: {work}
  patients: 3
steps:
  - id: synth
    action: synth
    when: src is null
    args: {{dataset: phe-sich, out: "{{work_dir}}/download", patients: "{{patients}}", size: 64}}
  - id: prepare
    action: prepare
    after: [synth]
    args: {{dataset: phe-sich, src: "{{src}}", src_if_null: "{{work_dir}}/download", out: "{{work_dir}}/data", folds: 2}}
  - id: report
    action: report
    after: [prepare]
    args: {{work_dir: "{{work_dir}}", out: "{{work_dir}}/report"}}
"""


@pytest.fixture
def pipe_file(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text(PIPE.format(work=tmp_path / "work"))
    return f


def run(pipe_file, capfd, overrides=None, **kw):
    rc = PipelineRunner(load_pipeline(pipe_file, overrides)).run(**kw)
    out = capfd.readouterr()
    return rc, out.out + out.err


def test_runs_then_skips_then_reruns_on_change(pipe_file, capfd):
    rc, out = run(pipe_file, capfd)
    assert rc == 0 and "[1/3] synth: running" in out and "[3/3] report: running" in out
    work = pipe_file.parent / "work"
    assert (work / "data/datalist.json").is_file() and (work / "report/report.html").is_file()
    stamp = json.loads((work / ".pipeline/report.json").read_text())
    rc, out = run(pipe_file, capfd)
    assert rc == 0 and "synth: up to date, skipped" in out and "report: up to date, skipped" in out
    assert "up to date (same" in out  # prepare ran and found nothing to do
    assert json.loads((work / ".pipeline/report.json").read_text()) == stamp
    rc, out = run(pipe_file, capfd, {"patients": "4"})  # a changed parameter re-runs what depends on it
    assert rc == 0 and "[1/3] synth: running" in out
    assert "[3/3] report: running" in out


def test_from_and_only(pipe_file, capfd):
    assert run(pipe_file, capfd)[0] == 0
    rc, out = run(pipe_file, capfd, from_step="prepare")
    assert "synth: up to date" in out and "[3/3] report: running" in out
    rc, out = run(pipe_file, capfd, only="report")
    assert rc == 0 and "report: running" in out and "synth" not in out
    with pytest.raises(UserError, match="no such step"):
        run(pipe_file, capfd, only="nope")


def test_only_needs_upstream(pipe_file, capfd):
    with pytest.raises(UserError, match="run prepare first"):
        run(pipe_file, capfd, only="report")


def test_failed_step_stops_and_keeps_earlier_outputs(pipe_file, tmp_path, capfd):
    assert run(pipe_file, capfd)[0] == 0
    work = tmp_path / "work"
    before = (work / "data/datalist.json").read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out = run(pipe_file, capfd, {"src": str(empty)})
    assert rc == 1 and "step 'prepare' failed" in out and "--from prepare" in out
    assert "[3/3] report" not in out
    assert (work / "data/datalist.json").read_bytes() == before


def test_unknown_parameter_suggests(pipe_file):
    with pytest.raises(UserError, match="did you mean --patients"):
        load_pipeline(pipe_file, {"patient": "3"})


def test_resolve_keeps_types():
    assert resolve({"a": "{n}", "b": "x/{n}", "c": ["{s}"]}, {"n": 3, "s": None}) == {"a": 3, "b": "x/3", "c": [None]}


def test_shipped_pipeline_parses():
    p = load_pipeline(REPO / "pipelines/phe_sich.yaml")
    assert [s.id for s in p.steps] == ["synth", "prepare", "sich_cls", "sich_det", "sich_seg", "subtypes", "report"]
    assert p.params["src"] is None and p.params["subtype_ckpt"] is None


def test_phe_pipeline_applies_a_subtype_model_only_when_given(tmp_path, capfd):
    """`--subtype_ckpt`: an `infer` step runs the given sich_multilabel checkpoint on the prepared slices."""
    p = load_pipeline(REPO / "pipelines/phe_sich.yaml", {"work_dir": str(tmp_path / "w")})
    assert PipelineRunner(p, dry_run=True).run() == 0
    out = capfd.readouterr().out
    assert "subtypes: skipped" in out and "medpipe infer" not in out
    ckpt = tmp_path / "ich/models/model.pt"
    p = load_pipeline(REPO / "pipelines/phe_sich.yaml", {"work_dir": str(tmp_path / "w"), "subtype_ckpt": str(ckpt)})
    assert PipelineRunner(p, dry_run=True).run() == 0
    out = capfd.readouterr().out
    assert (f"medpipe infer sich_multilabel --ckpt_path {ckpt} --input data/phe-sich/images "
            f"--output_dir {tmp_path / 'w/subtypes'}") in out


def test_ich_pipeline_trains_on_rsna_and_evaluates_on_cq500(tmp_path, capfd):
    from data_prep import DATASETS
    from medpipe.bundle.registry import BUNDLES

    p = load_pipeline(REPO / "pipelines/ich_subtypes.yaml", {"work_dir": str(tmp_path / "w"), "context": "1"})
    assert [s.id for s in p.steps] == ["synth", "prepare", "sich_multilabel", "synth_cq500", "prepare_cq500",
                                       "external", "report"]
    for s in p.steps:
        if s.action in ("synth", "prepare"):
            assert s.args["dataset"] in DATASETS
        if s.action in ("bundle", "evaluate"):
            assert s.args["bundle"] == "sich_multilabel" and BUNDLES["sich_multilabel"].dataset == "rsna-ich"
    assert PipelineRunner(p, dry_run=True).run() == 0
    out = capfd.readouterr().out
    assert "--context 1" in out and "medpipe synth cq500" in out
    assert (f"medpipe evaluate sich_multilabel --ckpt_path {tmp_path / 'w/sich_multilabel/models/model.pt'} "
            f"--dataset_dir data/cq500 --records test") in out


def test_chest_pipeline_parses_and_names_registered_datasets_and_bundles():
    from data_prep import DATASETS
    from medpipe.bundle.registry import BUNDLES

    p = load_pipeline(REPO / "pipelines/chest_xray.yaml", {"image_size": "224"})
    assert [s.id for s in p.steps] == ["synth", "prepare", "cxr14_cls", "report"]
    assert p.params["image_size"] == 224 and p.params["src"] is None
    for s in p.steps:
        if s.action in ("synth", "prepare"):
            assert s.args["dataset"] in DATASETS
        if s.action == "bundle":
            assert s.args["bundle"] in BUNDLES and BUNDLES[s.args["bundle"]].dataset == "cxr14"


KFOLD = """
name: kf
params:
  work_dir: {work}
  data: {data}
  kfold: null
steps:
  - id: cls
    action: bundle
    each_fold: "{{kfold}}"
    args: {{bundle: cxr14_cls, output_dir: "{{work_dir}}/cls", dataset_dir: "{{data}}", max_epochs: 1}}
"""


def test_each_fold_trains_one_model_per_fold(tmp_path, capfd):
    data = tmp_path / "data"
    data.mkdir()
    (data / "datalist.json").write_text(json.dumps({"training": [{"fold": k} for k in (0, 1, 2, 1)]}))
    f = tmp_path / "kf.yaml"
    f.write_text(KFOLD.format(work=tmp_path / "work", data=data))

    def dry(ov):
        rc = PipelineRunner(load_pipeline(f, ov), dry_run=True).run()
        return rc, capfd.readouterr().out

    rc, out = dry({})  # null: one model, no fold folders
    assert rc == 0 and out.count("medpipe train cxr14_cls") == 1 and "cls/fold_" not in out
    rc, out = dry({"kfold": "all"})  # every fold of the prepared datalist
    assert rc == 0 and out.count("medpipe train cxr14_cls") == 3
    for k in (0, 1, 2):
        assert f"--output_dir {tmp_path / 'work/cls'}/fold_{k} --dataset_dir {data} --max_epochs 1 --fold {k}" in out
        assert f"--ckpt_path {tmp_path / 'work/cls'}/fold_{k}/models/model.pt" in out
    rc, out = dry({"kfold": "[2, 0]"})
    assert out.count("medpipe train") == 2 and "model 1/2 (validation fold 0)" in out and "cls/fold_1" not in out
    with pytest.raises(UserError, match="each_fold is 'some'"):
        dry({"kfold": "some"})


def test_each_fold_only_on_bundle_steps(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: b\nparams: {}\nsteps:\n  - id: r\n    action: report\n    each_fold: all\n"
                 "    args: {work_dir: w, out: o}\n")
    with pytest.raises(UserError, match="each_fold.*bundle steps"):
        load_pipeline(f)


def test_help_lists_every_parameter_with_its_default_and_comment(capsys):
    from medpipe.cli import main

    with pytest.raises(SystemExit) as e:
        main(["run", str(REPO / "pipelines/chest_xray.yaml"), "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    params = load_pipeline(REPO / "pipelines/chest_xray.yaml").params
    for k in params:
        assert f"  --{k} " in out
    assert "one model per fold: {kfold}" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("  --kfold "))
    assert "null" in line and "one model per validation fold" in line


def test_pneumonia_pipeline_dry_run_passes_dataset_options_and_evaluates_elsewhere(tmp_path, capfd):
    """The prepare step's dataset options become that dataset's flags; the held-out and external evaluations
    write beside the run (eval-test, eval-external) with the run's checkpoint; an external source skips synth."""
    from data_prep import DATASETS
    from medpipe.bundle.registry import BUNDLES

    ov = {"work_dir": str(tmp_path / "w"), "external_src": str(tmp_path / "hospital")}
    p = load_pipeline(REPO / "pipelines/pneumonia.yaml", ov)
    for s in p.steps:
        if s.action in ("synth", "prepare"):
            assert s.args["dataset"] in DATASETS
        if s.action in ("bundle", "evaluate"):
            assert s.args["bundle"] in BUNDLES
    assert PipelineRunner(p, dry_run=True).run() == 0
    out = capfd.readouterr().out
    assert "--test-size 40 --cache-size 128" in out
    assert f"medpipe prepare dicom-folder --src {tmp_path / 'hospital'}" in out and "--key PatientID" in out
    assert "--label-column pneumonia" in out and "synth_external: skipped" in out
    ckpt = tmp_path / "w/cxr_pneumonia/models/model.pt"
    assert f"medpipe evaluate cxr_pneumonia --ckpt_path {ckpt} --dataset_dir data/rsna-pneumonia --records test " \
           f"--output_dir {tmp_path / 'w/cxr_pneumonia/eval-test'}" in out
    assert f"--dataset_dir data/hospital --records test --output_dir {tmp_path / 'w/cxr_pneumonia/eval-external'}" in out


def test_ankle_pipeline_parses_and_passes_the_manifest_only_when_given(tmp_path, capfd):
    p = load_pipeline(REPO / "pipelines/ankle_ct.yaml", {"work_dir": str(tmp_path / "w")})
    assert [s.id for s in p.steps] == ["synth", "prepare", "ankle_ct_cls", "report"]
    assert PipelineRunner(p, dry_run=True).run() == 0
    assert "--manifest" not in capfd.readouterr().out  # null: prepare finds labels.csv under --src
    p = load_pipeline(REPO / "pipelines/ankle_ct.yaml", {"work_dir": str(tmp_path / "w"), "src": "scans",
                                                          "manifest": "scans/table.xlsx"})
    assert PipelineRunner(p, dry_run=True).run() == 0
    out = capfd.readouterr().out
    assert "medpipe prepare ankle-ct --src scans" in out and "--manifest scans/table.xlsx" in out
    assert "synth: skipped" in out


def test_seg_recipes_pipeline_trains_each_preset_on_one_fold_and_evaluates_without_it(tmp_path, capfd):
    p = load_pipeline(REPO / "pipelines/sich_seg_recipes.yaml", {"work_dir": str(tmp_path / "w"), "time_limit_s": "60"})
    assert [s.id for s in p.steps] == ["synth", "prepare", "sich_seg", "old_recipe", "report"]
    assert PipelineRunner(p, dry_run=True).run() == 0
    out = capfd.readouterr().out
    w = tmp_path / "w"
    assert f"medpipe train sich_seg --preset cpu_budget --output_dir {w / 'sich_seg'}" in out
    assert (f"medpipe train sich_seg --preset old_recipe --output_dir {w / 'recipes/sich_seg/old_recipe'}" in out
            and out.count("--time_limit_s 60") == 2)  # the same budget for every recipe
    evals = [line for line in out.splitlines() if "medpipe evaluate" in line]
    assert len(evals) == 2 and not any("--preset" in e or "--time_limit_s" in e for e in evals)
