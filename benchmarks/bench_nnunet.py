"""Benchmark: nnU-Net v2's 2d configuration as a side-by-side baseline for sich_seg, on our split and metrics.

What it does, all under ``--work``:

1. exports the prepared dataset with :func:`medpipe.prepare.nnunet.export_nnunet` into
   ``WORK/nnUNet_raw/DatasetNNN_NAME`` and writes the datalist's patient folds as
   ``WORK/nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json`` (nnU-Net fold k = our fold k);
2. runs nnU-Net's fingerprint (with its dataset integrity check), planning and preprocessing of the
   ``2d`` configuration (``nnUNetv2_plan_and_preprocess -d ID -c 2d --verify_dataset_integrity``);
3. trains nnU-Net's 2d U-Net (its plans: patch, batch, network, augmentation, loss, SGD) on ``--fold``
   for ``--time_limit_s`` seconds with a time-budgeted subclass of ``nnUNetTrainer``: the epoch loop stops
   when the budget is spent (checked after every iteration) and nnU-Net's polynomial learning-rate decay
   runs over the budget (lr = 0.01 * (1 - elapsed / budget) ** 0.9) instead of over 1000 epochs; epochs are
   ``--iters_per_epoch`` iterations (nnU-Net: 250) plus ``--val_iters`` validation batches (nnU-Net: 50);
   ``checkpoint_final.pth`` is saved at the end as nnU-Net does;
4. checks that nnU-Net's validation cases are exactly our fold's slices, predicts them with that
   checkpoint in-process (nnU-Net's predictor: sliding window with Gaussian weighting, step 0.5; mirroring
   only with ``--mirror_tta``, like sich_seg's default), at native resolution;
5. scores the predictions with medpipe's own metrics (:func:`medpipe.evaluation.mask_files.evaluate_masks`:
   global Dice, IoU, sensitivity, specificity from pixel counts, per-case Dice over positive slices, the
   cross-fitted area-threshold slice classifier), the same computations as ``medpipe evaluate sich_seg``,
   and writes them like a medpipe evaluation (``WORK/eval/metrics.json``, ``WORK/predictions.csv``).

The time budget counts training only: the epoch loop (training iterations and nnU-Net's per-epoch
validation batches). Export, planning, preprocessing, data-loader start-up, prediction and scoring are
timed and reported separately.

Usage:
    python benchmarks/bench_nnunet.py --dataset_dir data/phe-sich --fold 0 --time_limit_s 900 --work runs/nnunet
    # optional: --compare runs/sich_seg/eval/metrics.json  (a sich_seg evaluation of the same fold)

Needs ``pip install -e '.[nnunet]'``. Prints progress, a table, and as the last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset_dir", required=True, help="prepared dataset (medpipe prepare's --out)")
    p.add_argument("--fold", type=int, default=0, help="validation fold of the datalist (default 0)")
    p.add_argument("--time_limit_s", type=float, default=900.0, help="training budget in seconds (default 900)")
    p.add_argument("--work", required=True, help="work folder: nnUNet_raw/preprocessed/results, predictions, eval")
    p.add_argument("--nnunet_id", type=int, default=501, help="nnU-Net dataset id (default 501)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="training/prediction device (default cpu)")
    p.add_argument("--iters_per_epoch", type=int, default=25,
                   help="training iterations per epoch (nnU-Net: 250; fewer so that CPU epochs are visible)")
    p.add_argument("--val_iters", type=int, default=5, help="validation batches per epoch (nnU-Net: 50)")
    p.add_argument("--batch_size", type=int, default=None, help="override the plan's batch size (default: nnU-Net's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--da_workers", type=int, default=None,
                   help="nnU-Net data-augmentation processes (default: cores - 1, at least 1)")
    p.add_argument("--mirror_tta", action="store_true", help="nnU-Net's mirroring test-time augmentation")
    p.add_argument("--compare", default=None, metavar="METRICS_JSON",
                   help="a sich_seg eval/metrics.json of the same fold, shown side by side")
    return p.parse_args(argv)


def setup_env(work: Path, args) -> dict:
    """nnU-Net's folders under ``work`` and its process settings; must run before nnunetv2 is imported."""
    from medpipe.utils.env import offline_env

    offline_env()
    cores = os.cpu_count() or 1
    paths = {k: work / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for k, v in paths.items():
        v.mkdir(parents=True, exist_ok=True)
        os.environ[k] = str(v)
    da = args.da_workers if args.da_workers is not None else max(1, cores - 1)
    os.environ["nnUNet_n_proc_DA"] = str(max(0, da))
    os.environ["nnUNet_def_n_proc"] = str(max(1, min(cores, 8)))
    os.environ.setdefault("nnUNet_compile", "false")
    return paths


def time_budget_trainer(base, budget_s: float, iters: int, val_iters: int):
    """A subclass of nnU-Net's trainer ``base`` that trains for ``budget_s`` seconds (see the module docstring)."""
    import numpy as np
    import torch

    class nnUNetTrainerTimeBudget(base):  # noqa: N801 - nnU-Net's naming
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cuda")):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_iterations_per_epoch = iters
            self.num_val_iterations_per_epoch = val_iters
            self.num_epochs = 100000  # an upper bound; the budget ends training
            self.save_every = 10 ** 9  # no periodic checkpoints; checkpoint_final.pth at the end
            self.budget_s = float(budget_s)
            self.train_seconds = 0.0
            self.iterations = 0
            self._t0 = None

        def _elapsed(self) -> float:
            return time.perf_counter() - self._t0

        def _set_lr(self) -> float:
            frac = min(self._elapsed() / self.budget_s, 1.0) if self.budget_s > 0 else 1.0
            lr = self.initial_lr * (1.0 - frac) ** 0.9
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            return lr

        def on_train_epoch_start(self):
            self.network.train()
            lr = self._set_lr()
            self.print_to_log_file("")
            self.print_to_log_file(f"Epoch {self.current_epoch}")
            self.print_to_log_file(f"Current learning rate: {np.round(lr, decimals=5)}")
            self.logger.log("lrs", lr, self.current_epoch)

        def run_training(self):
            self.on_train_start()
            self._t0 = time.perf_counter()  # the budget starts here: set-up above is not training
            while self.current_epoch < self.num_epochs and self._elapsed() < self.budget_s:
                self.on_epoch_start()
                self.on_train_epoch_start()
                outputs = []
                for _ in range(self.num_iterations_per_epoch):
                    self._set_lr()
                    outputs.append(self.train_step(next(self.dataloader_train)))
                    self.iterations += 1
                    if self._elapsed() >= self.budget_s:
                        break
                self.on_train_epoch_end(outputs)
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    val = [self.validation_step(next(self.dataloader_val))
                           for _ in range(self.num_val_iterations_per_epoch)]
                    self.on_validation_epoch_end(val)
                self.on_epoch_end()
                print(f"  epoch {self.current_epoch}: {self.iterations} iterations, "
                      f"{self._elapsed():.0f}/{self.budget_s:.0f} s, train loss "
                      f"{self.logger.get_value('train_losses', step=-1):.4f}, val pseudo Dice "
                      f"{self.logger.get_value('mean_fg_dice', step=-1):.4f}", flush=True)
            self.train_seconds = self._elapsed()
            self.on_train_end()

    return nnUNetTrainerTimeBudget


def plan_and_preprocess(dataset_id: int, processes: int) -> None:
    """``nnUNetv2_plan_and_preprocess -d ID -c 2d --verify_dataset_integrity`` through its Python API."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                      preprocess)

    extract_fingerprints([dataset_id], num_processes=processes, check_dataset_integrity=True)
    plan_experiments([dataset_id])
    preprocess([dataset_id], configurations=("2d",), num_processes=(processes,))


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


TABLE_KEYS = ("dice", "iou", "sensitivity", "specificity", "dice_per_case_mean", "empty_case_false_positive_rate")


def table(rows: dict[str, dict]) -> str:
    """A Markdown table: one line per model, the segmentation keys and the seg->cls accuracy/recall/F1."""
    cols = [*TABLE_KEYS, "s2c_accuracy", "s2c_recall", "s2c_f1"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, m in rows.items():
        s2c = m.get("seg_to_cls") or {}
        vals = [m.get(k) for k in TABLE_KEYS] + [s2c.get("accuracy"), s2c.get("recall"), s2c.get("f1")]
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in vals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(args.work).expanduser().absolute()
    paths = setup_env(work, args)
    try:
        import nnunetv2  # noqa: F401
    except ImportError:
        print("bench_nnunet: nnunetv2 is not installed; install the optional extra: pip install -e '.[nnunet]'",
              file=sys.stderr)
        return 2
    import numpy as np
    import torch
    from PIL import Image
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from medpipe.data.datalist import label_task, load_split
    from medpipe.errors import UserError
    from medpipe.evaluation.mask_files import evaluate_masks
    from medpipe.prepare.nnunet import case_id, export_nnunet
    from medpipe.utils.fs import write_json

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    device = torch.device(args.device)
    timings = {}

    # 1. export (our folds -> splits_final.json)
    t = time.perf_counter()
    try:
        rep = export_nnunet(args.dataset_dir, paths["nnUNet_raw"], dataset_id=args.nnunet_id,
                            preprocessed_dir=paths["nnUNet_preprocessed"], results_dir=paths["nnUNet_results"],
                            progress=lambda s: print(s, flush=True))
        val_records = load_split(args.dataset_dir, args.fold, "val", label_key=None)
    except UserError as e:
        print(f"bench_nnunet: error: {e}", file=sys.stderr)
        return 2
    timings["export_s"] = time.perf_counter() - t
    name, raw = rep["dataset_name"], Path(rep["raw"])
    class_names = label_task(args.dataset_dir, "mask")["class_names"]
    print(f"[1/5] exported {name}: {rep['num_training']} training slices, {rep['folds']} folds "
          f"({timings['export_s']:.1f} s)", flush=True)
    if not 0 <= args.fold < rep["folds"]:
        print(f"bench_nnunet: error: --fold {args.fold}: the datalist has folds 0..{rep['folds'] - 1}.",
              file=sys.stderr)
        return 2

    # 2. nnU-Net's own integrity check, fingerprint, 2d plan and preprocessing
    t = time.perf_counter()
    plan_and_preprocess(args.nnunet_id, int(os.environ["nnUNet_def_n_proc"]))
    timings["plan_preprocess_s"] = time.perf_counter() - t
    print(f"[2/5] nnU-Net plan and preprocess (2d, integrity verified): {timings['plan_preprocess_s']:.1f} s",
          flush=True)

    # 3. time-budgeted training of the 2d configuration on our fold
    pre = paths["nnUNet_preprocessed"] / name
    plans = load_json(str(pre / "nnUNetPlans.json"))
    if args.batch_size:
        plans["configurations"]["2d"]["batch_size"] = int(args.batch_size)
    plans["continue_training"] = False
    cls = time_budget_trainer(nnUNetTrainer, args.time_limit_s, args.iters_per_epoch, args.val_iters)
    trainer = cls(plans=plans, configuration="2d", fold=args.fold, dataset_json=load_json(str(pre / "dataset.json")),
                  device=device)
    final = Path(trainer.output_folder) / "checkpoint_final.pth"
    if final.exists():
        print(f"bench_nnunet: error: {final} exists from an earlier run; use a fresh --work (or delete "
              f"{trainer.output_folder}).", file=sys.stderr)
        return 2
    cfg = plans["configurations"]["2d"]
    print(f"[3/5] training nnU-Net 2d on fold {args.fold} for {args.time_limit_s:.0f} s on {device} "
          f"(patch {cfg['patch_size']}, batch {cfg['batch_size']}, {args.iters_per_epoch} iterations/epoch)",
          flush=True)
    t = time.perf_counter()
    trainer.run_training()
    timings["train_total_s"] = time.perf_counter() - t
    tr_keys, val_keys = trainer.do_split()
    ours = {case_id(r) for r in val_records}
    if set(val_keys) != ours or ours & set(tr_keys):
        print(f"bench_nnunet: error: nnU-Net's fold {args.fold} is not our fold ({len(val_keys)} vs {len(ours)} "
              f"validation cases); check {pre / 'splits_final.json'}.", file=sys.stderr)
        return 1
    print(f"      {trainer.current_epoch} epochs, {trainer.iterations} iterations in {trainer.train_seconds:.1f} s "
          f"(budget {args.time_limit_s:.0f} s); checkpoint {final}", flush=True)

    # 4. predict our validation fold with checkpoint_final.pth
    t = time.perf_counter()
    ckpt = torch.load(final, map_location="cpu", weights_only=False)
    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=args.mirror_tta,
                                perform_everything_on_device=device.type == "cuda", device=device,
                                verbose=False, allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager,
                                    [ckpt["network_weights"]], trainer.dataset_json, type(trainer).__name__,
                                    trainer.inference_allowed_mirroring_axes)
    reader = NaturalImage2DIO()
    pred_dir = work / "predictions" / f"fold_{args.fold}"
    pred_dir.mkdir(parents=True, exist_ok=True)
    preds = []
    for i, r in enumerate(val_records, 1):
        cid = case_id(r)
        img, props = reader.read_images([str(raw / "imagesTr" / f"{cid}_0000.png")])
        seg = np.asarray(predictor.predict_single_npy_array(img, props, None, None, False)).squeeze().astype(np.uint8)
        Image.fromarray(seg * 255).save(pred_dir / f"{cid}.png")
        preds.append(seg)
        if i % 50 == 0 or i == len(val_records):
            print(f"      predicted {i}/{len(val_records)}", flush=True)
    timings["predict_s"] = time.perf_counter() - t
    print(f"[4/5] predicted {len(preds)} validation slices in {timings['predict_s']:.1f} s -> {pred_dir}", flush=True)

    # 5. medpipe's metrics, at native resolution
    t = time.perf_counter()
    patients = sorted({str(r["patient"]) for r in val_records})
    m = evaluate_masks(val_records, preds, output_dir=work, class_names=class_names, extra={
        "model": "nnU-Net v2 2d (nnUNetPlans, nnUNetTrainer with a time budget)", "records": "val",
        "fold": args.fold, "dataset_dir": str(Path(args.dataset_dir).absolute()), "checkpoint": str(final),
        "time_limit_s": args.time_limit_s, "train_seconds": trainer.train_seconds, "epochs": trainer.current_epoch,
        "iterations": trainer.iterations, "mirror_tta": args.mirror_tta, "device": str(device)})
    timings["evaluate_s"] = time.perf_counter() - t
    print(f"[5/5] scored with medpipe.metrics.segmentation -> {work / 'eval/metrics.json'}", flush=True)

    rows = {"nnU-Net 2d": m}
    if args.compare:
        other = json.loads(Path(args.compare).read_text())
        differs = [k for k, ours in (("fold", args.fold), ("records", "val"), ("n_cases", m["n_cases"]))
                   if other.get(k) is not None and other.get(k) != ours]
        if other.get("dataset_dir") and Path(other["dataset_dir"]).resolve() != Path(args.dataset_dir).resolve():
            differs.append("dataset_dir")
        if differs:
            print(f"warning: {args.compare} was evaluated on other slices ({', '.join(differs)} differ); "
                  f"its numbers are not comparable with these.", flush=True)
        rows["sich_seg" + (f" (different {', '.join(differs)}!)" if differs else "")] = other
    print()
    print(f"fold {args.fold}: {len(val_records)} validation slices of {len(patients)} patients; "
          f"training {trainer.train_seconds:.0f} s of a {args.time_limit_s:.0f} s budget on {device}")
    print(table(rows))
    print()
    s2c = m.get("seg_to_cls") or {}
    result = {"model": "nnunetv2-2d", "dice": m["dice"], "iou": m["iou"], "sensitivity": m["sensitivity"],
              "specificity": m["specificity"], "dice_per_case_mean": m["dice_per_case_mean"],
              "seg_to_cls_accuracy": s2c.get("accuracy"), "seg_to_cls_recall": s2c.get("recall"),
              "seg_to_cls_f1": s2c.get("f1"), "epochs": trainer.current_epoch, "iterations": trainer.iterations,
              "train_seconds": round(trainer.train_seconds, 1), "time_limit_s": args.time_limit_s,
              "budget_counts": "training epoch loop only (train + nnU-Net validation batches)",
              "patients_val": len(patients), "slices_val": len(val_records), "fold": args.fold,
              "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"], "device": str(device),
              **{k: round(v, 1) for k, v in timings.items()}}
    write_json(work / "bench_nnunet.json", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
