"""Bundles: the registry (:mod:`.registry`), checkpoint settings (:mod:`.checkpoint`), the
``monai.bundle`` wrappers behind ``medpipe train|evaluate|infer`` (:mod:`.runner`), override
checks (:mod:`.overrides`) and export with a parity check (:mod:`.export`)."""

from medpipe.bundle.registry import BUNDLES, BundleSpec, get_bundle

__all__ = ["BUNDLES", "BundleSpec", "get_bundle"]
