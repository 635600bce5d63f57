"""Scan-level evaluation of a multi-label slice classifier (e.g. haemorrhage subtypes on head CT).

A CT scan is read as a whole: its slice probabilities are pooled per scan (the records' ``scan`` key)
with each aggregation asked for (``max``, ``top<k>``: the mean of the k highest slices per label,
``mean``) and scored against the scan's labels: the prepared dataset's scan table (``scans`` in
``datalist.json``, e.g. the majority of three readers) when it has one, else the OR of the slice
labels. When the scan table keeps each reader's labels, the model is also scored against every
reader, beside the readers' agreement with one another (Cohen's kappa per pair, Fleiss' kappa), so
that the model's numbers have a human reference.

Everything goes under ``scan_level`` in ``eval/metrics.json`` (plus the slice-level
``weighted_log_loss`` at the top level) and ``eval/scan_predictions.csv``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from ignite.engine import Engine, Events

from medpipe.utils.fs import write_json

log = logging.getLogger("medpipe")


def scan_truth(vols: list[dict], slice_rows: dict[str, list[dict]], table: dict[str, dict], n: int) -> tuple[np.ndarray, str]:
    """The label matrix of the scans and where it comes from (the scan table, else the OR of slice labels)."""
    if table and all(v["scan"] in table and table[v["scan"]].get("labels") is not None for v in vols):
        return np.asarray([table[v["scan"]]["labels"] for v in vols], dtype=int), "scan table (datalist `scans`)"
    ys = []
    for v in vols:
        labs = [np.asarray(r["label"]).reshape(-1) for r in slice_rows[v["scan"]] if r.get("label") is not None]
        ys.append(np.max(np.stack(labs), axis=0).astype(int) if labs else np.zeros(n, int))
    return np.asarray(ys, dtype=int), "any slice positive (OR of the slice labels)"


class ScanLevelReport:
    """Scan-level metrics of a multi-label slice classifier, against the scan labels and each reader.

    Args:
        report: the evaluation's ``ClassificationReport`` (its rows and metrics; attach this after it).
        records: the evaluated records (``select_records``; they carry ``group_key``).
        output_dir: the evaluation's output folder (``eval/metrics.json`` is updated in place).
        class_names: the model's class names.
        dataset_dir: the evaluated prepared dataset (its ``scans`` table, when present).
        group_key: the record key naming the scan.
        aggregations: pooling rules to report; the first is the primary one.
        loss_weights: ``{class: weight}`` of the weighted log loss (e.g. ``{"any": 2}``).
        n_boot: patient-level bootstrap resamples of the AUROC intervals (0: none).
    """

    def __init__(self, report, records: list[dict], output_dir: str, class_names, dataset_dir: str,
                 group_key: str = "scan", aggregations=("max", "top3", "mean"), loss_weights: dict | None = None,
                 n_boot: int = 1000) -> None:
        self.report, self.records = report, records
        self.output_dir, self.dataset_dir = Path(output_dir).expanduser().absolute(), dataset_dir
        self.class_names, self.group_key = list(class_names), group_key
        self.aggregations = [aggregations] if isinstance(aggregations, str) else list(aggregations)
        self.loss_weights, self.n_boot = dict(loss_weights or {}), int(n_boot or 0)
        self.metrics: dict | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def _score(self, y: np.ndarray, s: np.ndarray, patients: list, thresholds: list[float]) -> dict:
        from medpipe.metrics.bootstrap import multilabel_auroc_cis
        from medpipe.metrics.multilabel import multilabel_metrics, weighted_log_loss

        m = multilabel_metrics(y, s, self.class_names, thresholds)
        m["weighted_log_loss"] = weighted_log_loss(y, s, self.class_names, self.loss_weights or None)
        if self.n_boot and len(set(patients)) > 1:
            m["ci"] = multilabel_auroc_cis(patients, y, s, self.class_names, n_boot=self.n_boot)
        return m

    def _readers(self, vols, s: np.ndarray, table: dict, thresholds: list[float]) -> dict | None:
        if not table or not all(table.get(v["scan"], {}).get("readers") for v in vols):
            return None
        from sklearn.metrics import roc_auc_score

        from medpipe.metrics.agreement import cohen_kappa, reader_agreement

        names = sorted(table[vols[0]["scan"]]["readers"])
        readers = {r: np.asarray([table[v["scan"]]["readers"][r] for v in vols], dtype=int) for r in names}
        pred = (s >= np.asarray(thresholds)[None]).astype(int)
        per_reader = {}
        for r, y in readers.items():
            auroc, kappa = {}, {}
            for k, c in enumerate(self.class_names):
                col = y[:, k]
                auroc[c] = float(roc_auc_score(col, s[:, k])) if 0 < col.sum() < len(col) else None
                kappa[c] = cohen_kappa(col, pred[:, k])
            per_reader[r] = {"auroc_per_class": auroc, "kappa_model_vs_reader": kappa,
                             "positives": {c: int(y[:, k].sum()) for k, c in enumerate(self.class_names)}}
        return {"readers": names, "model_vs_reader": per_reader,
                "reader_agreement": reader_agreement(readers, self.class_names)}

    def __call__(self, engine: Engine | None = None) -> None:
        from medpipe.data.datalist import load_datalist
        from medpipe.engines.distributed import is_main_rank
        from medpipe.evaluation.aggregate import aggregate_by
        from medpipe.handlers.volumes import join_records
        from medpipe.metrics.multilabel import weighted_log_loss
        from medpipe.utils.fs import write_csv_atomic

        if not is_main_rank() or not self.report.all_rows or self.report.metrics is None:
            return
        path = self.output_dir / "eval" / "metrics.json"
        full = json.loads(path.read_text()) if path.exists() else dict(self.report.metrics)
        slice_y = np.asarray([np.asarray(r["label"]).reshape(-1) for r in self.report.all_rows], dtype=int)
        slice_s = np.asarray([r["scores"] for r in self.report.all_rows], dtype=np.float64)
        full["weighted_log_loss"] = weighted_log_loss(slice_y, slice_s, self.class_names, self.loss_weights or None)
        full["weighted_log_loss_weights"] = {c: float(self.loss_weights.get(c, 1.0)) for c in self.class_names}
        dl = load_datalist(self.dataset_dir)
        label_level = dl.get("label_level", "slice")
        full["label_level"] = label_level
        rows = join_records(self.report.all_rows, self.records, (self.group_key,))
        by_scan: dict[str, list[dict]] = {}
        for r in rows:
            if r.get(self.group_key) not in (None, ""):
                by_scan.setdefault(r[self.group_key], []).append(r)
        if not by_scan:
            log.warning("scan level skipped: no evaluated record has a %r", self.group_key)
            write_json(path, full, atomic=True)
            return
        table = {str(t.get("scan")): t for t in dl.get("scans") or []}
        thresholds = [float(self.report.metrics.get("thresholds", {}).get(c, 0.5)) for c in self.class_names]
        out: dict = {"n_scans": len(by_scan), "n_slices": int(sum(len(v) for v in by_scan.values())),
                     "group_key": self.group_key, "primary": self.aggregations[0], "thresholds": dict(zip(self.class_names, thresholds)),
                     "aggregations": {}}
        csv_rows: list[dict] = []
        for method in self.aggregations:
            vols = aggregate_by(rows, self.group_key, method=method)
            for v in vols:
                v["scan"] = v[self.group_key]
            y, source = scan_truth(vols, by_scan, table, len(self.class_names))
            s = np.asarray([v["scores"] for v in vols], dtype=np.float64)
            patients = [v.get("patient") or v["scan"] for v in vols]
            m = self._score(y, s, patients, thresholds)
            m["truth"] = source
            readers = self._readers(vols, s, table, thresholds)
            if readers:
                m["readers"] = readers
            out["aggregations"][method] = m
            if method == self.aggregations[0]:
                for v, yy in zip(vols, y):
                    csv_rows.append({"scan": v["scan"], "patient": v.get("patient", ""), "n_slices": v["n"],
                                     **{f"p_{c}": float(p) for c, p in zip(self.class_names, v["scores"])},
                                     **{f"label_{c}": int(t) for c, t in zip(self.class_names, yy)}})
        if label_level == "scan":
            out["note"] = ("labels are given per scan (readers' reads), not per slice: the slice-level metrics "
                           "score every slice of a scan against the scan's labels and understate the model; "
                           "read the scan level.")
        self.metrics = full["scan_level"] = out
        write_json(path, full, atomic=True)
        cols = ["scan", "patient", "n_slices", *[f"p_{c}" for c in self.class_names],
                *[f"label_{c}" for c in self.class_names]]
        write_csv_atomic(csv_rows, self.output_dir / "eval" / "scan_predictions.csv", cols)
        prim = out["aggregations"][out["primary"]]
        log.info("scan level (%d scans, %s of the slices): mean AUROC %s, weighted log loss %.4g", out["n_scans"],
                 out["primary"], "n/a" if prim.get("auroc_mean") is None else f"{prim['auroc_mean']:.4g}",
                 prim["weighted_log_loss"])
