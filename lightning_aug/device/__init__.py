"""The device side of the data path: whole batches on the training device, after the transfer.

- ``stage.py``: the device stage (uint8 to float, normalisation, device-batched augmentation, then the
  batch transforms of the trainer's callbacks, training batches only)
- ``normalize.py``: normalisation kernels and the one host-to-device copy of per-batch parameters
- ``augment.py``: device-batched augmentation ops (crop, flip, colour jitter, erasing)
- ``protocol.py``: ``BatchTransform``, the protocol of callbacks that change training batches
- ``mixing/``: mixup and CutMix (sampling, kernels, the ``MixupCallback``)
"""
