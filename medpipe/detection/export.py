"""Export: ONNX / TorchScript through ultralytics' exporter, the parity check against the eager network,
and ``medpipe export sich_det`` (:func:`export_yolo_cli`).

Exported files take a 1x3xSxS float input in [0, 1] and return ultralytics' raw head
(1 x (4 + classes) x anchors: box centre/size in input pixels, then the class scores after
sigmoid; no NMS).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from medpipe.detection.env import prepare_ultralytics_env, ul_device
from medpipe.detection.network import checkpoint_image_size, load_checkpoint_model, load_yolo
from medpipe.errors import UserError

__all__ = ["export_yolo", "yolo_parity", "export_yolo_cli", "EXPORT_TOLERANCE"]

#: largest accepted parity difference (boxes as fractions of the image)
EXPORT_TOLERANCE = 1e-4


def export_yolo(ckpt_path: str, format: str = "onnx", output: str | None = None, image_size: int | None = None,
                device="cpu", config_dir: str | None = None) -> str:
    """Export through ultralytics' exporter (ONNX: ``simplify=False``, ``dynamic=False``; TorchScript).

    The exporter works on a temporary copy of the checkpoint (it writes next to its input), and the
    file is moved to ``output`` (default: next to the checkpoint, ``.onnx`` or ``.ts``). Input
    1x3xSxS float in [0, 1]; output ultralytics' raw head (1 x (4 + classes) x anchors, boxes as
    xywh in input pixels, class scores after sigmoid; no NMS).

    Returns:
        The exported file's path.
    """
    fmt = str(format).lower()
    if fmt not in ("onnx", "torchscript"):
        raise UserError(f"--format {format}: choose torchscript or onnx")
    prepare_ultralytics_env(config_dir)
    ckpt = Path(ckpt_path).expanduser().absolute()
    if not ckpt.is_file():
        raise UserError(f"--ckpt_path {ckpt}: not found; train first (medpipe train BUNDLE).")
    out = Path(output).expanduser().absolute() if output else ckpt.with_suffix(".onnx" if fmt == "onnx" else ".ts")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medpipe-yolo-export-") as td:
        src = Path(td) / "model.pt"
        shutil.copyfile(ckpt, src)
        yolo = load_yolo(str(src))
        size = int(image_size) if image_size else checkpoint_image_size(yolo)
        kwargs = dict(format=fmt, imgsz=size, dynamic=False, device=ul_device(device))
        if fmt == "onnx":
            kwargs["simplify"] = False  # else ultralytics tries to pip-install onnxslim
        f = yolo.export(**kwargs)
        if not f or not Path(f).is_file():
            raise RuntimeError(f"ultralytics export to {fmt} produced no file")
        shutil.move(str(f), out)
    return str(out)


def _first_tensor(out):
    import torch

    while isinstance(out, (list, tuple)):
        out = out[0]
    return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)


def _parity_outputs(ckpt_path: str, exported: str, image_size: int | None, seed: int):
    import torch

    yolo = load_checkpoint_model(ckpt_path)
    size = int(image_size) if image_size else checkpoint_image_size(yolo)
    net = yolo.model.float().eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = _first_tensor(net(x))
        if str(exported).endswith(".onnx"):
            import onnxruntime as ort

            sess = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        else:
            got = _first_tensor(torch.jit.load(str(exported), map_location="cpu")(x))
    if ref.shape != got.shape:
        raise RuntimeError(f"exported output shape {got.shape} differs from the eager {ref.shape}")
    return ref, got, size


def yolo_parity(ckpt_path: str, exported: str, image_size: int | None = None, seed: int = 0,
                normalize_boxes: bool = False) -> float:
    """Max abs difference between the eager network (``YOLO(ckpt).model``, eval) and the exported file.

    Both run on the same random 1x3xSxS input in [0, 1]; the first output tensor is compared (the
    eager head also returns its per-level feature maps, the exported one only the decoded tensor):
    rows 0-3 are box centre/size in input pixels, the rest class scores in [0, 1].

    Args:
        ckpt_path: the ultralytics checkpoint.
        exported: the ``.onnx`` or ``.ts``/``.torchscript`` file.
        image_size: input size; None: the checkpoint's training size.
        seed: seed of the random input.
        normalize_boxes: divide the box rows by the image size first. Box values reach ~S pixels,
            where float32 spacing alone is 3e-5 (S=256) to 6e-5 (S=512): the exporter's fused
            convolutions then differ from the unfused eager network by 1-2 units in the last place,
            which can exceed 1e-4 in pixels while being ~1e-7 of the image.

    Returns:
        The max abs difference.
    """
    ref, got, size = _parity_outputs(ckpt_path, exported, image_size, seed)
    if normalize_boxes:
        ref, got = ref.copy(), got.copy()
        ref[:, :4] /= size
        got[:, :4] /= size
    return float(np.abs(ref - got).max())


def export_yolo_cli(ckpt_path: str, fmt: str, output: str | None = None, overrides: dict | None = None) -> int:
    """``medpipe export sich_det``: export, print the equivalent ultralytics command and the parity figure."""
    if fmt not in ("torchscript", "onnx"):
        raise UserError(f"--format {fmt}: choose torchscript or onnx")
    ov = dict(overrides or {})
    ckpt = Path(ckpt_path).expanduser().absolute()
    if not ckpt.is_file():
        raise UserError(f"--ckpt_path {ckpt}: not found; train first (medpipe train BUNDLE) or point at "
                        f"models/model.pt.")
    size = ov.get("image_size")
    size = int(size) if size not in (None, "", "None", "null") else None
    device = ov.get("device") or "cpu"
    threads = ov.get("threads")
    threads = int(threads) if threads not in (None, "", "None", "null") else None
    prepare_ultralytics_env(ov.get("yolo_config_dir"), threads)
    size = size or checkpoint_image_size(load_checkpoint_model(ckpt))
    shown = f"yolo export model={ckpt} format={fmt} imgsz={size}" + (" simplify=False" if fmt == "onnx" else "") + \
        f" dynamic=False device={ul_device(device)}"
    print(f"running: {shown}  (ultralytics' exporter, in-process through medpipe.detection.export.export_yolo)",
          flush=True)
    out = export_yolo(str(ckpt), fmt, output, size, device, ov.get("yolo_config_dir"))
    ref, got, s = _parity_outputs(str(ckpt), out, size, 0)
    raw = float(np.abs(ref - got).max())
    scale = np.ones((1, ref.shape[1], 1), dtype=np.float64)
    scale[:, :4] = 1.0 / s
    norm = float(np.abs((ref - got) * scale).max())
    ok = norm <= EXPORT_TOLERANCE
    print(f"exported {out}; parity with the eager model on a random 1x3x{s}x{s} input: max abs diff {norm:.2e} with "
          f"boxes as fractions of the image ({'OK' if ok else 'FAILED'}, tolerance {EXPORT_TOLERANCE:g}); "
          f"{raw:.2e} in raw pixel units (box values up to {np.abs(ref[:, :4]).max():.0f} px)", flush=True)
    return 0 if ok else 1
