"""Shared fixtures: tiny hand-made datasets in the real PHE-SICH-CT-IDS layout, the real-sample path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.phe_sich import layout as L

REPO = Path(__file__).resolve().parents[1]
SHARED_PHE = REPO.parent / "shared" / "data" / "PHE-SICH-CT-IDS"

# keep tool caches out of HOME for anything a test starts
os.environ.setdefault("MPLCONFIGDIR", str(REPO / ".cache" / "matplotlib"))
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / ".cache" / "ultralytics"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")


def voc_xml(filename: str, box=None, size=32) -> str:
    """A VOC file like the dataset's: with a box it has <size>; without one it has neither."""
    head = (f"<?xml version='1.0' encoding='us-ascii'?>\n<annotation>\n<folder>VOC2007</folder>\n"
            f"<filename>{filename}</filename>\n<path>C:\\x\\{filename}</path>\n"
            f"<source><database>Unknown</database></source>\n")
    if box is None:
        return head + "<segmented>0</segmented>\n</annotation>"
    x0, y0, x1, y1 = box
    return head + (f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size>\n"
                   f"<segmented>0</segmented>\n<object><name>a</name><pose>Unspecified</pose>"
                   f"<truncated>0</truncated><difficult>0</difficult><bndbox><xmin>{x0}</xmin>"
                   f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>\n</annotation>")


def make_png_dataset(root: Path, patients=None, size: int = 32, subset: str = "png") -> dict:
    """Write a tiny 2D subset: ``patients`` maps patient number -> list of positive flags per slice.

    Positive slices get a square lesion mask and the XML box enclosing it. Returns the expected
    per-slice truth ``{(patient, slice): positive}``.
    """
    patients = patients or {1: [0, 1, 1, 0], 2: [0, 0, 1], 3: [0, 0, 0], 4: [1, 1, 0], 5: [0, 1, 0]}
    ext = L.SUBSET_EXT[subset]
    truth = {}
    rng = np.random.default_rng(0)
    for p, flags in patients.items():
        for kind in ("image", "mask", "annotation"):
            (root / L.slice_dir(subset, kind, p)).mkdir(parents=True, exist_ok=True)
        for s, pos in enumerate(flags):
            stem = L.slice_stem(p, s)
            img = rng.integers(0, 60, (size, size), dtype=np.uint8)
            mask = np.zeros((size, size), np.uint8)
            box = None
            if pos:
                mask[8:16, 10:20] = 255
                img[8:16, 10:20] = 200
                box = (10, 8, 19, 15)
            # the dataset's .jpg files are PNG-encoded: write PNG bytes whatever the extension
            Image.fromarray(img).save(root / L.slice_dir(subset, "image", p) / f"{stem}{ext}", format="PNG")
            Image.fromarray(mask).save(root / L.slice_dir(subset, "mask", p) / f"{stem}{ext}", format="PNG")
            (root / L.slice_dir(subset, "annotation", p) / f"{stem}.xml").write_text(
                voc_xml(f"{stem}.jpg", box, size))
            truth[(p, s)] = pos
    return truth


@pytest.fixture
def png_dataset(tmp_path):
    """A tiny clean PNG-subset dataset root and its truth."""
    root = tmp_path / "PHE-SICH-CT-IDS"
    truth = make_png_dataset(root)
    return root, truth


@pytest.fixture
def real_phe():
    """The real PHE-SICH-CT-IDS sample, or a skip saying why."""
    if not (SHARED_PHE / "SubdatasetC_PNG").is_dir():
        pytest.skip(f"real PHE-SICH-CT-IDS sample not found at {SHARED_PHE} (shared data absent)")
    return SHARED_PHE


def corrupt_png_pixels(path: Path, fix_crc: bool = False) -> None:
    """Damage a PNG inside its pixel data (IDAT), keeping its header and IEND: a header check passes.

    ``fix_crc`` also rewrites the chunk's CRC, so only decoding the pixels can find the damage.
    """
    import struct
    import zlib

    data = bytearray(path.read_bytes())
    i = data.find(b"IDAT")
    (n,) = struct.unpack(">I", data[i - 4:i])
    for k in range(i + 6, i + 4 + n - 4):  # keep the zlib header; damage the deflate stream
        data[k] ^= 0x5A
    if fix_crc:
        data[i + 4 + n:i + 8 + n] = struct.pack(">I", zlib.crc32(bytes(data[i:i + 4 + n])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def tree_digest(root: Path) -> dict:
    """{relative path: (size, mtime_ns, bytes hash)} of every file, to prove a tree was not modified."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, hashlib.md5(p.read_bytes()).hexdigest())
    return out
