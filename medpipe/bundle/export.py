"""Export a bundle's network (TorchScript or ONNX) through monai.bundle, then prove parity with eager.

The network is rebuilt from the checkpoint's own settings (``models/model.json``): the export needs
``--ckpt_path`` and ``--format`` only. MONAI-engine bundles go through ``python -m monai.bundle
ckpt_export|onnx_export network_def`` (printed, then run in this process); a bundle on the ultralytics engine through
ultralytics' exporter. Either way the exported file is checked against the eager model on a random
batch of 2 (max abs diff <= 1e-4).
"""

from __future__ import annotations

import os
from pathlib import Path

from medpipe.bundle.registry import get_bundle
from medpipe.bundle.runner import bundle_dir, execute, monai_command, prepare_run, repo_root, shown
from medpipe.errors import UserError

TOLERANCE = 1e-4  # as medpipe.inferers.engines.TOLERANCE (not imported: that module imports torch)
FORMATS = ("torchscript", "onnx")


def inference_network(bundle: str, ckpt_path: str, overrides: dict | None = None):
    """``(network with the checkpoint loaded, input shape)`` built from ``inference.json`` and the checkpoint's settings."""
    from monai.bundle import ConfigParser

    from medpipe.bundle.overrides import parse_value

    cwd = os.getcwd()
    os.chdir(repo_root())  # the configs' %file#id macros are relative to the repository root
    try:
        parser = ConfigParser()
        parser.read_config(str(bundle_dir(bundle) / "configs" / "inference.json"))
        parser.update({k: parse_value(v) for k, v in (overrides or {}).items()} | {"ckpt_path": str(ckpt_path)})
        net = parser.get_parsed_content("network_def")
        trained = parser.get_parsed_content("trained")
        drop = parser.get_parsed_content("training_only_weights")
    finally:
        os.chdir(cwd)
    from medpipe.networks.weights import load_weights

    load_weights(net, str(ckpt_path), drop)
    net.eval()
    return net, input_shape(trained)


def input_shape(settings: dict) -> list[int]:
    """The ``[1, C, (D,) H, W]`` input a trained network is traced/exported with, from its checkpoint settings.

    A segmenter runs patch by patch (its ``patch_size``); a classifier sees ``image_size`` squares, or
    ``image_depth`` x ``image_size`` x ``image_size`` volumes when it was trained with ``spatial_dims`` 3.

    Example:
        >>> input_shape({"image_size": 64, "in_channels": 1}), input_shape({"image_size": 64, "spatial_dims": 3, "image_depth": 16})
        ([1, 1, 64, 64], [1, 1, 16, 64, 64])
    """
    c = int(settings.get("in_channels", 1) or 1)
    if settings.get("patch_size"):
        return [1, c, *(int(v) for v in settings["patch_size"])]
    size = int(settings["image_size"])
    if int(settings.get("spatial_dims", 2) or 2) == 3:
        return [1, c, int(settings["image_depth"]), size, size]
    return [1, c, size, size]


def check_parity(bundle: str, ckpt_path: str, exported: str, fmt: str, overrides: dict | None = None,
                 batch: int = 2, seed: int = 0) -> float:
    """Max absolute difference between the eager network (checkpoint loaded) and the exported file.

    Args:
        bundle: bundle name.
        ckpt_path: the state_dict checkpoint (``models/model.pt``) with its ``model.json``.
        exported: the ``.ts`` or ``.onnx`` file.
        fmt: ``torchscript`` or ``onnx``.
        overrides: config overrides used for the export.
        batch: batch size of the random test input (2 checks the dynamic batch axis).
    """
    from medpipe.inferers.engines import load_exported, max_abs_diff

    net, shape = inference_network(bundle, ckpt_path, overrides)
    # loaded exactly as `--engine torchscript|onnx` runs it (onnxruntime: all graph optimizations on)
    return max_abs_diff(net, load_exported(exported, fmt), shape, batch=batch, seed=seed)


def export(bundle: str, ckpt_path: str, fmt: str, output: str | None = None, overrides: dict | None = None,
           dry_run: bool = False) -> int:
    """Export with ``python -m monai.bundle ckpt_export|onnx_export`` and check parity (<= 1e-4).

    Args:
        bundle: a registered bundle.
        ckpt_path: the checkpoint (its ``model.json`` beside it gives sizes and network arguments).
        fmt: ``torchscript`` or ``onnx``.
        output: the file to write (default: next to the checkpoint, ``.ts`` / ``.onnx``).
        overrides: further ``--KEY VALUE`` overrides (checked like any bundle command).
        dry_run: print the command only.

    Returns:
        0 when the export exists and matches the eager model; 1 when parity fails.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: choose torchscript or onnx.")
    ckpt = Path(ckpt_path).expanduser().absolute()
    out = Path(output).expanduser().absolute() if output else ckpt.with_suffix(".ts" if fmt == "torchscript" else ".onnx")
    if out.is_dir() or (output and str(output).endswith(os.sep)):
        raise UserError(f"--output {output}: is a folder; give the file to write, e.g. {out / ('model.ts' if fmt == 'torchscript' else 'model.onnx')}.")
    if not out.parent.exists():
        raise UserError(f"--output {out}: its folder {out.parent} does not exist; create it first.")
    if not os.access(out.parent, os.W_OK):
        raise UserError(f"--output {out}: cannot write in {out.parent} (permission denied).")
    spec = get_bundle(bundle)
    if spec.engine == "ultralytics":
        from medpipe.detection.export import export_yolo_cli

        prepare_run("export", bundle, {**(overrides or {}), "ckpt_path": str(ckpt)})
        return export_yolo_cli(str(ckpt), fmt, str(out), overrides)
    _, ov, facts = prepare_run("export", bundle, {**(overrides or {}), "ckpt_path": str(ckpt)})
    settings = facts["sidecar"]["settings"]
    # a segmenter is run patch by patch (sliding window): trace it at its patch size, and let the ONNX
    # graph take any height and width (the network is fully convolutional)
    seg = spec.task == "segmentation"
    shape = "[" + ",".join(str(v) for v in input_shape(settings)) + "]"
    ov.pop("ckpt_path", None)
    ov["ckpt_path"] = str(ckpt)
    if fmt == "torchscript":
        cmd = monai_command("ckpt_export", bundle, ov, ["inference.json"],
                            ["--filepath", str(out), "--ckpt_file", str(ckpt), "--use_trace", "True",
                             "--input_shape", shape])
    else:
        axes = "{0:'batch',2:'height',3:'width'}" if seg else "{0:'batch'}"
        kwargs = f"{{'input_names':['image'],'output_names':['pred'],'dynamic_axes':{{'image':{axes},'pred':{axes}}}}}"
        cmd = monai_command("onnx_export", bundle, ov, ["inference.json"],
                            ["--filepath", str(out), "--ckpt_file", str(ckpt), "--input_shape", shape,
                             "--converter_kwargs", kwargs])
    print("running: " + shown(cmd), flush=True)
    if dry_run:
        return 0
    execute(cmd)
    diff = check_parity(bundle, str(ckpt), str(out), fmt, {k: v for k, v in ov.items() if k != "ckpt_path"})
    ok = diff <= TOLERANCE
    print(f"exported {out}; parity with the eager model on a random batch of 2: max abs diff {diff:.2e} "
          f"({'OK' if ok else 'FAILED'}, tolerance {TOLERANCE:g})")
    return 0 if ok else 1
