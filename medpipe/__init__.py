"""medpipe: MONAI-based medical imaging pipelines."""
__version__ = "0.1.0"
