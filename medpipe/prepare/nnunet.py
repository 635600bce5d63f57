"""A prepared 2D segmentation dataset as an nnU-Net v2 raw dataset, with our patient folds as its splits.

nnU-Net v2 reads a dataset from ``$nnUNet_raw/DatasetNNN_Name/`` and its cross-validation splits from
``$nnUNet_preprocessed/DatasetNNN_Name/splits_final.json`` (``nnUNetTrainer.do_split``; without that
file it makes its own random 5-fold split). :func:`export_nnunet` writes both from a prepared dataset's
``datalist.json`` -- the single source of our splits -- so that nnU-Net trains and validates on exactly
our patients::

    <raw>/DatasetNNN_Name/
        imagesTr/<case>_0000.png     grayscale image of every training record (all folds)
        labelsTr/<case>.png          its mask as 0/1 uint8 (foreground: value > 127, as medpipe reads masks)
        imagesTs/<case>_0000.png     held-out test records, when the datalist has a test split
        labelsTs/<case>.png          their masks (nnU-Net ignores this folder; handy for its evaluator)
        dataset.json                 channel_names, labels, numTraining, file_ending ".png", ...
        splits_final.json            copy of the splits: fold k validates on our fold k
        medpipe_cases.csv            case id -> split, fold, patient, slice, source image and mask
        .medpipe-nnunet.json         what was exported from where (the up-to-date check reads it)
    <preprocessed>/DatasetNNN_Name/splits_final.json   where nnU-Net reads the splits

Case ids are ``<patient>_<slice:03d>`` (records with a ``slice``) or ``<patient>_<image stem>``, made
file-name safe; they are unique (a clash is an error) and traceable through ``medpipe_cases.csv``.

Nothing here knows a dataset: the labels come from the datalist's ``tasks["mask"]``, the channel name
from ``input.modality`` and the default name from ``dataset``. Only binary masks of single-channel
2D images (PNG or anything PIL reads) are supported, which covers every prepared 2D segmentation set.

Example:
    >>> export_nnunet("data/phe-sich", "nnUNet_raw", dataset_id=501,
    ...               preprocessed_dir="nnUNet_preprocessed")  # doctest: +SKIP
    {'dataset_name': 'Dataset501_PHESICH', 'num_training': 1796, 'folds': 5, ...}
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

from medpipe.errors import DataError, UserError
from medpipe.utils.fs import atomic_output_dir, atomic_write_text, clean_stale_temps, is_within, write_json

__all__ = ["export_nnunet", "case_id", "read_binary_mask", "nnunet_splits", "default_name", "dataset_folder_name",
           "MARKER", "CASES_CSV", "FORMAT_VERSION"]

#: the marker file that says a raw dataset folder was written by :func:`export_nnunet`
MARKER = ".medpipe-nnunet.json"
#: the case id -> source record table
CASES_CSV = "medpipe_cases.csv"
#: bumped when the written layout changes (an older export is then out of date)
FORMAT_VERSION = 1
FILE_ENDING = ".png"
CHANNEL_SUFFIX = "_0000"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def default_name(datalist: dict) -> str:
    """The nnU-Net dataset name of a datalist: its ``dataset`` key in capitals without separators.

    Example:
        >>> default_name({"dataset": "phe-sich"})
        'PHESICH'
    """
    raw = str(datalist.get("dataset") or datalist.get("name") or "MEDPIPE")
    return re.sub(r"[^A-Za-z0-9]", "", raw).upper() or "MEDPIPE"


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetNNN_Name`` as nnU-Net spells it (``Dataset%03d``).

    Example:
        >>> dataset_folder_name(7, "PHESICH")
        'Dataset007_PHESICH'
    """
    return f"Dataset{int(dataset_id):03d}_{name}"


def case_id(record: dict) -> str:
    """A file-name-safe, traceable case id for a record: ``<patient>_<slice:03d>`` or ``<patient>_<stem>``.

    Example:
        >>> case_id({"image": "images/0001_05.png", "patient": "0001", "slice": 5})
        '0001_005'
        >>> case_id({"image": "images/00000013_003.png", "patient": "13"})
        '13_00000013_003'
    """
    patient = str(record.get("patient", ""))
    sl = record.get("slice")
    if isinstance(sl, int) and not isinstance(sl, bool):
        raw = f"{patient}_{sl:03d}" if patient else f"{sl:03d}"
    else:
        stem = Path(str(record["image"])).name.split(".")[0]
        raw = f"{patient}_{stem}" if patient else stem
    return _UNSAFE.sub("-", raw).strip("-") or "case"


def nnunet_splits(cases: list[tuple[str, int]], num_folds: int) -> list[dict]:
    """nnU-Net's ``splits_final.json`` content: fold k validates on the cases of our fold k.

    Args:
        cases: ``(case id, fold)`` of every training case.
        num_folds: the datalist's number of folds.

    Returns:
        ``[{"train": [...], "val": [...]}, ...]`` with sorted ids, one entry per fold.

    Example:
        >>> nnunet_splits([("a", 0), ("b", 1), ("c", 0)], 2)
        [{'train': ['b'], 'val': ['a', 'c']}, {'train': ['a', 'c'], 'val': ['b']}]
    """
    return [{"train": sorted(c for c, f in cases if f != k), "val": sorted(c for c, f in cases if f == k)}
            for k in range(num_folds)]


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _mask_task(datalist: dict, where: Path) -> list[str]:
    task = (datalist.get("tasks") or {}).get("mask")
    if not isinstance(task, dict) or task.get("kind") != "segmentation":
        have = ", ".join(f"{k} ({v.get('kind')})" for k, v in (datalist.get("tasks") or {}).items()) or "none"
        raise DataError(f"{where}: declares no 'mask' segmentation labels (it has: {have}); the nnU-Net export "
                        f"needs a prepared segmentation dataset (e.g. `medpipe prepare phe-sich`).")
    names = [str(c) for c in task.get("class_names") or []]
    if len(names) != 2:
        raise DataError(f"{where}: tasks['mask'] has class_names {names}; the nnU-Net export handles binary "
                        f"masks (background and one foreground class) only.")
    return names


def _read_image(path: Path):
    """The image as a 2D uint8/uint16 array, and the PNG bytes to write when the file can be copied as is."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format == "PNG" and im.mode in ("L", "I;16"):
                return None, path.read_bytes()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im)
                if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
                    raise DataError(f"{path}: integer pixel values outside 0..65535 cannot be written as PNG.")
                return arr.astype(np.uint16), None
            if im.mode not in ("L", "P", "RGB", "RGBA", "LA", "1"):
                raise DataError(f"{path}: image mode {im.mode} is not supported by the nnU-Net export; "
                                f"expected an 8- or 16-bit grayscale image.")
            return np.asarray(im.convert("L")), None
    except (OSError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable 2D image ({e}); the nnU-Net export handles 2D slice datasets "
                        f"(PNG/JPEG images). Re-run `medpipe prepare` if the file is damaged.") from e


def read_binary_mask(path) -> "np.ndarray":
    """A mask file as 0/1 uint8: foreground is value > 127, exactly as medpipe's evaluation reads targets
    (:func:`medpipe.transforms.io.load_gray` with ``binarize=True``), so nnU-Net learns and is scored on
    the same pixels. Kept here so the export does not import MONAI."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "I", "F") else im)
    return (arr > 127).astype(np.uint8)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]


def _write_png(arr, path: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def _write_case(rec: dict, base: Path, cid: str, img_dir: Path, lbl_dir: Path | None) -> dict:
    """Write one case; returns its foreground pixel count and shape."""
    image = base / rec["image"]
    if not image.is_file():
        raise DataError(f"{base / 'datalist.json'}: record image {rec['image']} does not exist under {base}; "
                        f"re-run `medpipe prepare`.")
    arr, data = _read_image(image)
    dst = img_dir / f"{cid}{CHANNEL_SUFFIX}{FILE_ENDING}"
    if data is not None:
        dst.write_bytes(data)
        shape = _image_size(image)
    else:
        if arr.ndim != 2:
            raise DataError(f"{image}: expected a 2D image, got shape {arr.shape}.")
        _write_png(arr, dst)
        shape = arr.shape
    out = {"shape": tuple(shape), "foreground": None}
    if lbl_dir is not None and rec.get("mask"):
        mask_path = base / rec["mask"]
        if not mask_path.is_file():
            raise DataError(f"{base / 'datalist.json'}: record mask {rec['mask']} does not exist under {base}; "
                            f"re-run `medpipe prepare`.")
        mask = read_binary_mask(mask_path)
        if mask.shape != tuple(shape):
            raise DataError(f"{mask_path}: mask shape {mask.shape} differs from its image {image} {tuple(shape)}; "
                            f"nnU-Net needs image and label on the same grid.")
        _write_png(mask, lbl_dir / f"{cid}{FILE_ENDING}")
        out["foreground"] = int(mask.sum())
    return out


def _check_id_free(dataset_id: int, name: str, roots: dict[str, Path | None]) -> None:
    """No other ``DatasetNNN_*`` folder with our id in nnU-Net's folders (nnU-Net refuses ambiguous ids)."""
    prefix = f"Dataset{int(dataset_id):03d}_"
    want = dataset_folder_name(dataset_id, name)
    for what, root in roots.items():
        if root is None or not root.is_dir():
            continue
        for p in sorted(root.iterdir()):
            if p.is_dir() and p.name.startswith(prefix) and p.name != want:
                raise UserError(f"{what} {root}: dataset id {dataset_id} is already taken by {p.name}; nnU-Net "
                                f"finds datasets by id, so {want} would make it ambiguous. Choose another --id "
                                f"(e.g. {dataset_id + 1}) or remove {p} if it is no longer needed.")


def export_nnunet(dataset_dir, raw_dir, dataset_id: int = 501, name: str | None = None,
                  preprocessed_dir=None, results_dir=None, overwrite: bool = False, progress=None) -> dict:
    """Write a prepared 2D segmentation dataset as nnU-Net v2 raw data, with our folds as ``splits_final.json``.

    The raw folder is built in a temporary sibling and renamed into place (complete or untouched); the
    prepared dataset is only read. Re-running with an unchanged datalist and options does no work.

    Args:
        dataset_dir: the folder ``medpipe prepare`` wrote (``datalist.json`` with ``mask`` records).
        raw_dir: nnU-Net's raw folder (``$nnUNet_raw``); ``DatasetNNN_Name`` is created inside it.
        dataset_id: nnU-Net dataset id (1..999).
        name: dataset name (letters, digits, ``-``, ``_``); default :func:`default_name` of the datalist.
        preprocessed_dir: nnU-Net's preprocessed folder (``$nnUNet_preprocessed``): ``splits_final.json``
            is written to ``DatasetNNN_Name/`` there, where nnU-Net's trainer reads it. None: only the copy
            in the raw folder is written (nnU-Net would then make its own random folds).
        results_dir: ``$nnUNet_results``, only checked for a clashing dataset id.
        overwrite: replace an earlier export of this id made from different data or options (only a
            folder this function wrote is ever replaced).
        progress: optional ``callable(str)`` for progress lines.

    Returns:
        A summary: ``dataset_name``, ``raw``, ``splits_file`` (the preprocessed copy or None),
        ``num_training``, ``num_test``, ``folds``, ``patients`` per fold, ``up_to_date`` and ``notes``.

    Raises:
        UserError / DataError: bad options, a datalist without binary masks, a clashing id or folder, a
            record whose files are missing, duplicate case ids.
    """
    say = progress or (lambda s: None)
    base = Path(dataset_dir).expanduser().absolute()
    from medpipe.data.datalist import load_datalist

    dl = load_datalist(base)
    where = base / "datalist.json"
    class_names = _mask_task(dl, where)
    try:
        dataset_id = int(dataset_id)
    except (TypeError, ValueError):
        raise UserError(f"--id {dataset_id!r}: expected a whole number in 1..999.") from None
    if not 1 <= dataset_id <= 999:
        raise UserError(f"--id {dataset_id}: nnU-Net dataset ids are 1..999 (custom datasets usually 500+).")
    name = default_name(dl) if name is None else str(name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise UserError(f"--name {name!r}: use letters, digits, '-' and '_' only (nnU-Net folder DatasetNNN_NAME).")
    channels = int((dl.get("input") or {}).get("channels") or 1)
    if channels != 1:
        raise DataError(f"{where}: input has {channels} channels; the nnU-Net export handles single-channel "
                        f"(grayscale) slices only.")
    raw_root = Path(raw_dir).expanduser().absolute()
    pre_root = Path(preprocessed_dir).expanduser().absolute() if preprocessed_dir else None
    res_root = Path(results_dir).expanduser().absolute() if results_dir else None
    for opt, root in (("--out", raw_root), ("--preprocessed", pre_root)):
        if root is not None and (is_within(root, base) or is_within(base, root)):
            raise UserError(f"{opt} {root}: must be outside the prepared dataset {base} (and not contain it); "
                            f"the export never writes into a prepared dataset.")

    folder = dataset_folder_name(dataset_id, name)
    out = raw_root / folder
    train = dl["training"]
    test = list(dl.get("test") or [])
    bad = next((r for r in train if not isinstance(r.get("fold"), int) or not r.get("mask")), None)
    if bad is not None:
        raise DataError(f"{where}: record {bad.get('image', '?')} has no integer 'fold' or no 'mask'; every "
                        f"training record needs both. Re-run `medpipe prepare`.")
    num_folds = int(dl.get("num_folds") or 0) or max(r["fold"] for r in train) + 1
    fingerprint = hashlib.sha256(json.dumps({
        "datalist": _sha256(where), "report": _sha256(base / "prepare_report.json"), "id": dataset_id,
        "name": name, "format": FORMAT_VERSION}, sort_keys=True).encode()).hexdigest()

    # ids and splits first: every conflict is found before anything is written
    cases, seen = [], {}
    for split, recs in (("train", train), ("test", test)):
        for r in recs:
            cid = case_id(r)
            if cid in seen:
                raise DataError(f"{where}: records {seen[cid]} and {r['image']} both map to nnU-Net case id {cid!r}; "
                                f"case ids are <patient>_<slice>. Check the datalist for duplicate slices.")
            seen[cid] = r["image"]
            cases.append((cid, split, r))
    splits = nnunet_splits([(c, r["fold"]) for c, s, r in cases if s == "train"], num_folds)
    empty = [k for k, s in enumerate(splits) if not s["val"] or not s["train"]]
    if empty:
        raise DataError(f"{where}: fold(s) {empty} leave no validation or no training case; re-run "
                        f"`medpipe prepare` with fewer --folds.")
    splits_text = json.dumps(splits, indent=2) + "\n"
    _check_id_free(dataset_id, name, {"--out": raw_root, "--preprocessed": pre_root, "nnUNet_results": res_root})
    clean_stale_temps(out)
    notes: list[str] = []
    pre_splits = pre_root / folder / "splits_final.json" if pre_root else None

    marker = _read_json(out / MARKER) if out.exists() else None
    up_to_date = bool(marker) and marker.get("fingerprint") == fingerprint
    if out.exists() and not up_to_date:
        if marker is None:
            raise UserError(f"--out {raw_root}: {folder} exists and was not written by `medpipe export-nnunet` "
                            f"(no {MARKER}); it is never replaced. Choose another --id or --name, or move it away.")
        if not overwrite:
            raise UserError(f"--out {raw_root}: {folder} holds an export of other data or options ("
                            f"{marker.get('dataset_dir')}, datalist changed or different id/name). Pass "
                            f"--overwrite to replace it (then re-run nnU-Net's plan_and_preprocess), or choose "
                            f"another --id.")
    if pre_splits is not None and pre_splits.is_file() and pre_splits.read_text() != splits_text:
        ours = marker is not None and marker.get("splits_sha256") == hashlib.sha256(pre_splits.read_bytes()).hexdigest()
        if not (overwrite or ours):
            raise UserError(f"--preprocessed: {pre_splits} exists with other splits; nnU-Net would train on them. "
                            f"Pass --overwrite to replace it with the datalist's folds, or choose another --id.")
        if (pre_root / folder / "nnUNetPlans.json").exists():
            notes.append(f"{pre_root / folder} holds nnU-Net data preprocessed from the earlier export: re-run "
                         f"`nnUNetv2_plan_and_preprocess -d {dataset_id} -c 2d` before training.")

    summary = {"dataset_name": folder, "dataset_id": dataset_id, "raw": str(out), "dataset_dir": str(base),
               "splits_file": str(pre_splits) if pre_splits else None,
               "num_training": sum(1 for _c, s, _r in cases if s == "train"),
               "num_test": sum(1 for _c, s, _r in cases if s == "test"), "folds": num_folds,
               "patients": [len({r["patient"] for _c, s, r in cases if s == "train" and r["fold"] == k})
                            for k in range(num_folds)],
               "labels": {class_names[0]: 0, class_names[1]: 1}, "up_to_date": up_to_date, "notes": notes}
    if up_to_date:
        say(f"{out}: up to date; nothing to do.")
    else:
        with atomic_output_dir(out) as tmp:
            dirs = {"train": (tmp / "imagesTr", tmp / "labelsTr"), "test": (tmp / "imagesTs", tmp / "labelsTs")}
            for split, (img_dir, lbl_dir) in dirs.items():
                if split == "train" or test:
                    img_dir.mkdir()
                    if split == "train" or any(r.get("mask") for r in test):
                        lbl_dir.mkdir()
            rows, fg = [], 0
            for i, (cid, split, r) in enumerate(cases, 1):
                img_dir, lbl_dir = dirs[split]
                info = _write_case(r, base, cid, img_dir, lbl_dir if lbl_dir.is_dir() else None)
                fg += int(bool(info["foreground"]))
                rows.append({"case_id": cid, "split": split, "fold": r.get("fold", ""), "patient": r.get("patient", ""),
                             "slice": r.get("slice", ""), "image": r["image"], "mask": r.get("mask", ""),
                             "label": r.get("label", ""), "height": info["shape"][0], "width": info["shape"][1]})
                if i % 500 == 0 or i == len(cases):
                    say(f"  wrote {i}/{len(cases)} cases")
            modality = str((dl.get("input") or {}).get("modality") or "image")
            write_json(tmp / "dataset.json", {
                "channel_names": {"0": modality},
                "labels": {class_names[0]: 0, class_names[1]: 1},
                "numTraining": summary["num_training"],
                "file_ending": FILE_ENDING,
                "overwrite_image_reader_writer": "NaturalImage2DIO",
                "name": folder,
                "description": f"{dl.get('description') or dl.get('name') or dl.get('dataset')} "
                               f"(exported by medpipe export-nnunet; splits_final.json = the datalist's "
                               f"{num_folds} patient folds)",
                "numTest": summary["num_test"],
            })
            (tmp / "splits_final.json").write_text(splits_text)
            with open(tmp / CASES_CSV, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            write_json(tmp / MARKER, {
                "fingerprint": fingerprint, "format": FORMAT_VERSION, "dataset_dir": str(base),
                "datalist_sha256": _sha256(where), "dataset_id": dataset_id, "name": name,
                "num_training": summary["num_training"], "num_test": summary["num_test"], "folds": num_folds,
                "positive_training_cases": fg,
                "splits_sha256": hashlib.sha256(splits_text.encode()).hexdigest()})
        say(f"wrote {out}: {summary['num_training']} training cases ({fg} with foreground), "
            f"{summary['num_test']} test cases, {num_folds} folds")
    if pre_splits is not None and (not pre_splits.is_file() or pre_splits.read_text() != splits_text):
        pre_splits.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(pre_splits, splits_text)
        say(f"wrote {pre_splits}")
    elif pre_splits is None:
        notes.append(f"no --preprocessed folder (nor $nnUNet_preprocessed): copy {out / 'splits_final.json'} to "
                     f"$nnUNet_preprocessed/{folder}/ before training, or nnU-Net makes its own random folds.")
    return summary

