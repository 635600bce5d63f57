"""The detector network: model-argument checks, loading ultralytics checkpoints, building the torch module.

``models/model.pt`` is an *ultralytics checkpoint* (a pickled dict holding the network object,
loaded with ``ultralytics.YOLO(path)``), not a plain state_dict, because the detector's network
class is ultralytics'. It carries the training arguments (``train_args``, e.g. ``imgsz``) and the
class names (``names``), read here by :func:`checkpoint_image_size` and
:func:`checkpoint_class_names`. ``models/model_state_dict.pt`` holds the plain state_dict
(``torch.load(..., weights_only=True)``) and ``models/model.yaml`` the architecture it belongs to
(``build_network("models/model.yaml")`` rebuilds the module, with its number of classes).

Grayscale input: the network keeps the standard 3-channel input (``ch=3``; ultralytics decodes a
gray PNG as three identical channels), so exported files are ordinary YOLOv8 models. Models are
built from ``yolov8{n,s,m}.yaml`` (no hub download); a ``.pt`` must be a local file.
"""

from __future__ import annotations

import os
from pathlib import Path

from medpipe.detection.data import names_list
from medpipe.detection.env import THREAD_EVENTS, ensure_ultralytics_env, restore_threads
from medpipe.errors import UserError

__all__ = ["build_network", "check_model_arg", "load_yolo", "load_checkpoint_model", "checkpoint_image_size",
           "checkpoint_class_names"]


def check_model_arg(model: str | os.PathLike) -> str:
    """A valid ``model`` argument: an architecture ``.yaml`` as given, or a local ``.pt`` as an absolute path.

    Raises:
        UserError: a hub name (``yolov8n.pt``, which would be downloaded), a missing ``.pt`` or anything else.

    Example:
        >>> check_model_arg("yolov8s.yaml")
        'yolov8s.yaml'
    """
    m = str(model)
    if m.endswith((".yaml", ".yml")):
        return m
    if m.endswith(".pt"):
        if not Path(m).expanduser().is_file():
            raise UserError(f"model {m!r}: no such file. Hub weights are not downloaded: give a local .pt path, "
                            f"or build from an architecture, e.g. --model yolov8n.yaml (or yolov8s.yaml, yolov8m.yaml).")
        return str(Path(m).expanduser().absolute())
    raise UserError(f"model {m!r}: expected an architecture (yolov8n.yaml, yolov8s.yaml, yolov8m.yaml or a local "
                    f".yaml file) or a local .pt checkpoint.")


def load_yolo(model: str):
    """``ultralytics.YOLO(model)`` with medpipe's thread callbacks (the offline environment prepared first)."""
    ensure_ultralytics_env()
    from ultralytics import YOLO

    yolo = YOLO(model, task="detect")
    for ev in THREAD_EVENTS:
        yolo.add_callback(ev, restore_threads)
    return yolo


def load_checkpoint_model(ckpt_path: str | os.PathLike):
    """:func:`load_yolo` of a trained checkpoint, with a message that says what to do when it is missing."""
    p = Path(ckpt_path).expanduser()
    if not p.is_file():
        raise UserError(f"--ckpt_path {p}: not found; train first (medpipe train BUNDLE) or point at "
                        f"a run's models/model.pt.")
    return load_yolo(str(p.absolute()))


def checkpoint_image_size(yolo, default: int = 640) -> int:
    """The training image size a loaded checkpoint records (``train_args.imgsz``), else ``default``."""
    v = ((getattr(yolo, "ckpt", None) or {}).get("train_args") or {}).get("imgsz")
    if v is None:
        margs = getattr(yolo.model, "args", None)
        v = margs.get("imgsz") if isinstance(margs, dict) else getattr(margs, "imgsz", None)
    try:
        return int(v[0] if isinstance(v, (list, tuple)) else v)
    except (TypeError, ValueError):
        return default


def checkpoint_class_names(yolo) -> list[str]:
    """The box class names a loaded checkpoint carries (ultralytics' ``names``), as a list indexed by class id."""
    names = getattr(yolo, "names", None)
    if names is None:
        names = getattr(getattr(yolo, "model", None), "names", None)
    return names_list(names, "the checkpoint's names")


def build_network(model: str = "yolov8n.yaml", num_classes: int | None = None, channels: int = 3,
                  raw_output: bool = False):
    """The detector's torch module (ultralytics ``DetectionModel``), e.g. to load ``model_state_dict.pt``.

    Args:
        model: an architecture (``yolov8n.yaml``, ``models/model.yaml`` written by training) or a local
            ultralytics ``.pt`` (its network is returned, in float32).
        num_classes: number of box classes; None: the architecture's own ``nc`` (the trained number
            in a ``models/model.yaml``; 80, COCO's, in ultralytics' stock ``yolov8*.yaml``). A ``.pt``
            keeps its classes (a different ``num_classes`` is an error).
        channels: input channels (3: the gray slice repeated, as ultralytics feeds it).
        raw_output: in eval mode return only the decoded head tensor (1 x (4 + classes) x anchors),
            as ultralytics' exporter does, instead of ``(tensor, per-level maps)``: what
            ``python -m monai.bundle ckpt_export|onnx_export network_def`` needs to trace the network.

    Example:
        >>> net = build_network("runs/sich_det/models/model.yaml")  # doctest: +SKIP
        >>> sd = torch.load("runs/sich_det/models/model_state_dict.pt", weights_only=True)  # doctest: +SKIP
        >>> net.load_state_dict(sd)  # doctest: +SKIP
    """
    model = check_model_arg(model)
    ensure_ultralytics_env()
    if model.endswith(".pt"):
        net = load_yolo(model).model.float()
        nc = int(net.model[-1].nc)  # the Detect head's
        if num_classes is not None and int(num_classes) != nc:
            raise UserError(f"num_classes {num_classes}: the checkpoint {model} has {nc} classes.")
    else:
        from ultralytics.nn.tasks import DetectionModel

        nc = int(num_classes) if num_classes is not None else None
        net = DetectionModel(cfg=model, ch=int(channels), nc=nc, verbose=False)
    if raw_output:
        head = net.model[-1]
        head.export = True  # the Detect head's own switch: eval output = the decoded tensor only
        head.dynamic = True  # rebuild anchors every call, so two traced calls give the same graph
    return net
