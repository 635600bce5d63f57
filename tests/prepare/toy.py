"""A toy dataset plugged into the prepare engine: the smallest converter, as a new dataset would write it.

Source layout: ``SRC/<patient>/<name>.png`` plus ``SRC/labels.csv`` (``path,label``; for the
multi-label variant ``path,a;b;c`` with 0/1 flags). Records come one per image.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

from medpipe.errors import DataError
from medpipe.io.images import ImageHeaderError, decode_image
from medpipe.prepare.converter import Converter, Plan, UnitResult
from medpipe.prepare.spec import DatasetSpec, InputSpec, Option, Task
from medpipe.utils.fs import link_or_copy


class ToyConverter(Converter):
    folders = ("images",)
    skip_words = {"no_label": "image without a row in labels.csv"}

    def locate(self, src: Path) -> dict:
        if not (src / "labels.csv").is_file():
            raise DataError(f"{src}: no labels.csv; not a toy dataset")
        return {}

    def plan(self, src, files, located) -> Plan:
        plan = Plan(description="toy")
        labels = {}
        with open(src / "labels.csv") as f:
            for row in csv.reader(f):
                labels[row[0]] = row[1]
        plan.inputs["table"] += 1
        per_patient = defaultdict(list)
        for rel, _s, _m in files:
            if rel == "labels.csv":
                continue
            if rel not in labels:
                plan.inputs["other"] += 1
                plan.skipped.append({"path": rel, "kind": "no_label", "reason": "not in labels.csv"})
                continue
            plan.inputs["image"] += 1
            per_patient[rel.split("/")[0]].append((rel, labels[rel]))
        plan.units = [(p, per_patient[p]) for p in sorted(per_patient)]
        return plan

    def convert(self, unit, src, out) -> UnitResult:
        patient, items = unit
        res = UnitResult()
        for rel, lab in items:
            try:
                decode_image(os.path.join(src, rel))[0].close()
            except ImageHeaderError as e:
                res.skipped.append({"path": rel, "kind": "unreadable", "reason": str(e)})
                continue
            name = f"images/{rel.replace('/', '_')}"
            res.links[link_or_copy(os.path.join(src, rel), os.path.join(out, name), self.options["link"])] += 1
            rec = {"image": name, "patient": patient}
            if "labels" in self.spec.tasks:
                rec["labels"] = [int(x) for x in lab.split(";")]
            else:
                rec["label"] = self.options["bad_label"] or int(lab)
            res.records.append(rec)
            res.used += 1
        return res

    def finish(self, records, src, located):
        from medpipe.prepare.converter import Finish

        return Finish(used=1)  # labels.csv


TOY = DatasetSpec(
    name="toy", title="Toy", summary="a toy binary dataset", version="1",
    converter="tests.prepare.toy:ToyConverter",
    tasks={"label": Task("binary", ("neg", "pos"))},
    input=InputSpec(modality="XR"),
    options=(Option("bad_label", "", "write this (wrong) label value instead, to test validation", str),),
)
TOY_ML = DatasetSpec(
    name="toy-ml", title="Toy ML", summary="a toy multi-label dataset", version="1",
    converter="tests.prepare.toy:ToyConverter",
    tasks={"labels": Task("multilabel", ("a", "b", "c"))},
    input=InputSpec(modality="XR"),
    options=(Option("bad_label", "", "unused", str),),
)


def make_toy(root: Path, patients: int = 6, per_patient: int = 3, multilabel: bool = False) -> Path:
    """Write a toy source folder; patient i's images alternate labels."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in range(patients):
        (root / f"p{p:02d}").mkdir(exist_ok=True)
        for k in range(per_patient):
            rel = f"p{p:02d}/{k}.png"
            Image.fromarray(np.full((8, 8), 10 * k + p, np.uint8)).save(root / rel)
            lab = f"{(p + k) % 2};{int(p % 3 == 0)};{int(k == 0)}" if multilabel else str((p + k) % 2)
            rows.append(f"{rel},{lab}\n")
    (root / "labels.csv").write_text("".join(rows))
    return root
