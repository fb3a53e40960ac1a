"""The names of the data-path bench's cases, as its results and report name them."""

__all__ = ["BASELINE", "CONFIGURED", "DECODE_OPENCV", "EVAL_BASELINE", "EVAL_CONFIGURED", "FLOOR", "FLOOR_TV"]

BASELINE = "classic (v1 PIL Compose, float)"
CONFIGURED = "pipeline (configured)"
DECODE_OPENCV = "decode only (OpenCV, whole image)"
FLOOR = "floor (read + region decode + resize)"
FLOOR_TV = "floor, torchvision's antialiased resize"
EVAL_BASELINE = "eval classic (v1 PIL Resize+CenterCrop, float)"
EVAL_CONFIGURED = "eval pipeline (configured)"
