"""Export a bundle's network (TorchScript or ONNX) through monai.bundle, then prove parity with eager."""

from __future__ import annotations

import json
from pathlib import Path

from medpipe.bundle.runner import bundle_dir, monai_command, repo_root, show_and_run
from medpipe.errors import UserError

TOLERANCE = 1e-4


def _inference_parser(bundle: str, overrides: dict):
    import os

    from monai.bundle import ConfigParser

    root = repo_root()
    cwd = os.getcwd()
    os.chdir(root)  # the configs' %file#id macros are relative to the repository root
    try:
        parser = ConfigParser()
        parser.read_config(str(bundle_dir(bundle) / "configs" / "inference.json"))
        parser.update({k: v for k, v in overrides.items() if k in parser.get()})
        net = parser.get_parsed_content("network_def")
        size = int(parser.get_parsed_content("image_size"))
        in_ch = int(parser.get("network_def").get("in_channels", 1)) if isinstance(parser.get("network_def"), dict) else 1
    finally:
        os.chdir(cwd)
    return net, size, in_ch


def _typed(v: str):
    try:
        return json.loads(v)
    except ValueError:
        return v


def check_parity(bundle: str, ckpt_path: str, exported: str, fmt: str, overrides: dict | None = None,
                 batch: int = 2, seed: int = 0) -> float:
    """Max absolute difference between the eager network (checkpoint loaded) and the exported file.

    Args:
        bundle: bundle name.
        ckpt_path: the state_dict checkpoint (``models/model.pt``).
        exported: the ``.ts`` or ``.onnx`` file.
        fmt: ``torchscript`` or ``onnx``.
        overrides: config overrides used for the export (e.g. ``network_name``, ``image_size``).
        batch: batch size of the random test input (2 checks the dynamic batch axis).
    """
    import numpy as np
    import torch

    net, size, in_ch = _inference_parser(bundle, {k: _typed(v) for k, v in (overrides or {}).items()})
    net.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=True))
    net.eval()
    x = torch.randn(batch, in_ch, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = net(x)
        if fmt == "torchscript":
            out = torch.jit.load(exported, map_location="cpu")(x)
            got = out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        else:
            import onnxruntime as ort

            sess = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return float(np.abs(ref.numpy() - got).max())


def export(bundle: str, ckpt_path: str, fmt: str, output: str | None = None, overrides: dict | None = None) -> int:
    """Export through ``python -m monai.bundle ckpt_export|onnx_export`` and check parity (<= 1e-4)."""
    if bundle == "sich_det":  # an ultralytics network: exported by ultralytics' exporter, parity checked the same way
        from medpipe.detection.yolo import export_yolo_cli

        return export_yolo_cli(ckpt_path, fmt, output, overrides)
    if fmt not in ("torchscript", "onnx"):
        raise UserError(f"--format {fmt}: choose torchscript or onnx")
    ckpt = Path(ckpt_path).expanduser().absolute()
    if not ckpt.is_file():
        raise UserError(f"--ckpt_path {ckpt}: not found; train first (medpipe train {bundle}) or point at models/model.pt.")
    overrides = dict(overrides or {})
    out = Path(output).expanduser().absolute() if output else ckpt.with_suffix(".ts" if fmt == "torchscript" else ".onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    _, size, in_ch = _inference_parser(bundle, {k: _typed(v) for k, v in overrides.items()})
    shape = f"[1,{in_ch},{size},{size}]"
    if fmt == "torchscript":
        cmd = monai_command("ckpt_export", bundle, overrides, ["inference.json"],
                            ["--filepath", str(out), "--ckpt_file", str(ckpt), "--use_trace", "True",
                             "--input_shape", shape])
    else:
        kwargs = "{'input_names':['image'],'output_names':['pred'],'dynamic_axes':{'image':{0:'batch'},'pred':{0:'batch'}}}"
        cmd = monai_command("onnx_export", bundle, overrides, ["inference.json"],
                            ["--filepath", str(out), "--ckpt_file", str(ckpt), "--input_shape", shape,
                             "--converter_kwargs", kwargs])
    rc = show_and_run(cmd)
    if rc != 0:
        return rc
    diff = check_parity(bundle, str(ckpt), str(out), fmt, overrides)
    ok = diff <= TOLERANCE
    print(f"exported {out}; parity with the eager model on a random batch of 2: max abs diff {diff:.2e} "
          f"({'OK' if ok else 'FAILED'}, tolerance {TOLERANCE:g})")
    return 0 if ok else 1
