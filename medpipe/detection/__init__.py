"""Object detection: YOLOv8 boxes of perihaematomal oedema through ultralytics (used as a library).

Everything here is named by full dotted ``_target_`` in ``bundles/sich_det/configs``:
:func:`~medpipe.detection.yolo.prepare_ultralytics_env`, :func:`~medpipe.detection.yolo.fold_data_yaml`,
:class:`~medpipe.detection.yolo.YoloTrainer`, :class:`~medpipe.detection.yolo.YoloEvaluator`,
:class:`~medpipe.detection.yolo.YoloPredictor`, :func:`~medpipe.detection.yolo.export_yolo` and
:func:`~medpipe.detection.yolo.yolo_parity`. Importing this package does not import ultralytics.
"""
