"""Dataset-level helpers shared by every converter: splits, datalists, YOLO export."""
