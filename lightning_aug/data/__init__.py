"""The worker side of the data path: what runs in the DataLoader workers, per sample, on uint8.

- ``datasets/``: dataset factories (built-in synthetic shapes and photographs, image folders, CIFAR)
- ``decoders.py``, ``jpeg.py``: image bytes to RGB pixels (nvImageCodec region decoding, OpenCV, PIL)
- ``pipeline.py``: per-sample pipelines (albumentations 2.x or torchvision v2), uint8 CHW out
- ``transforms.py``: the crops a pipeline starts with, run while decoding
- ``loader.py``: DataLoader settings and the uint8 collation
"""
