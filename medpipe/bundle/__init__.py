"""Thin wrappers over ``python -m monai.bundle``: ``medpipe train|evaluate|infer|export BUNDLE``.

``BUNDLES`` is the explicit registry of bundle name -> dataset it trains on.
"""

BUNDLES = {
    "sich_cls": {"dataset": "phe-sich", "kind": "classification"},
    "sich_seg": {"dataset": "phe-sich", "kind": "segmentation"},
    "sich_det": {"dataset": "phe-sich", "kind": "detection"},
}
