"""Object detection with YOLOv8 through ultralytics (AGPL-3.0, used as a library only).

Ultralytics' ``YOLO`` object trains, validates, predicts and exports; medpipe prepares its inputs
(a data.yaml per medpipe fold), keeps it offline, and turns its outputs into medpipe's
(``models/model.pt``, TensorBoard, ``history.json``, ``eval/metrics.json``, CSV/JSON predictions).
The box classes are never written into this code: their number and names come from the prepared
dataset's ``yolo/data.yaml`` (for training) and from the checkpoint's ``names`` (after it).

Layout, one concern per module (arrows: imports inside the package; no cycles):

* :mod:`~medpipe.detection.env` -- the offline ultralytics environment: config folder, fonts,
  torch threads, device names. Run :func:`~medpipe.detection.env.prepare_ultralytics_env` before
  ultralytics is imported (the bundle configs do so in ``initialize``).
* :mod:`~medpipe.detection.data` -- class names of a prepared dataset
  (:func:`~medpipe.detection.data.class_names`), YOLO label paths, the export's image index and the
  per-fold data.yaml (:func:`~medpipe.detection.data.fold_data_yaml`).
* :mod:`~medpipe.detection.network` (-> env, data) -- model-argument checks, loading checkpoints
  (image size and class names they carry), :func:`~medpipe.detection.network.build_network`.
* :mod:`~medpipe.detection.training` (-> env, network) --
  :class:`~medpipe.detection.training.YoloTrainer`, ultralytics' ``results.csv`` as a history.
* :mod:`~medpipe.detection.predictions` -- pure helpers: box rows, slice rows (the slice-level
  "any finding" summary), the confidence sweep, the RSNA challenge score of the boxes
  (:func:`~medpipe.detection.predictions.challenge_summary`), CSV columns.
* :mod:`~medpipe.detection.inference` (-> env, network, predictions) -- running a checkpoint on
  slices, :class:`~medpipe.detection.inference.YoloPredictor`.
* :mod:`~medpipe.detection.evaluation` (-> env, data, network, predictions, inference) --
  :class:`~medpipe.detection.evaluation.YoloEvaluator` and its drawings.
* :mod:`~medpipe.detection.export` (-> env, network) --
  :func:`~medpipe.detection.export.export_yolo`, :func:`~medpipe.detection.export.yolo_parity`,
  :func:`~medpipe.detection.export.export_yolo_cli` (``medpipe export sich_det``).

Bundle configs (``bundles/sich_det/configs``, ``bundles/cxr_pneumonia_det/configs``) name these by full dotted path;
nothing here knows a dataset: classes, splits and boxes come from the prepared dataset, and the extra box
metrics a bundle wants are named in its evaluate.json (``extra_metrics``). Importing this package
or any of its modules does not import ultralytics.
"""
