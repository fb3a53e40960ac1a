"""A kornia augmentation on whole training batches on the device, as a ``DeviceOp``.

Where to plug in a batched augmentation of your own (kornia's, or any ``images -> images`` on tensors):

- a :class:`lightning_aug.device.augment.DeviceOp` in ``device_transforms`` receives the training
  batch as floats **in [0, 1], before the normalisation** (as the built-in ``ColorJitter`` does): the
  place for colour and geometric augmentation;
- a ``BatchTransform`` callback (MixUp/CutMix) receives the **normalised** batch (about [-2.1, 2.6]
  with ImageNet's statistics) and the targets: the place for mixing. kornia's colour ops clamp their
  input to [0, 1], so given as a ``BatchTransform`` they silently ruin the images.

``KorniaOp`` draws kornia's random parameters from the batch's own generator (a function of the run
seed, the rank, the epoch and the batch, :func:`lightning_aug.seeding.batch_rng`), so a run with it is
reproducible and resumes on the same augmentation.

Run:  .venv/bin/python examples/kornia_op.py        (needs kornia: pip install kornia)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lightning_aug.device.augment import DeviceOp


class KorniaOp(DeviceOp):
    """Any ``kornia.augmentation`` module (or ``AugmentationSequential``) as a device op.

    Args:
        augmentation: the kornia augmentation, applied to the ``(N, C, H, W)`` float batch in [0, 1].
    """

    def __init__(self, augmentation: nn.Module) -> None:
        self.augmentation = augmentation
        self._seed = 0

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # one seed per batch from the batch's generator; kornia draws its parameters from it below
        return {"seed": np.full(n, rng.integers(1 << 31), dtype=np.int64)}

    def device_params(self, params: dict[str, np.ndarray], height: int, width: int) -> dict[str, Any]:
        self._seed = int(params["seed"][0])  # read on the host: nothing to copy to the device
        return {}

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        with torch.random.fork_rng(devices=[]):  # kornia draws from torch's CPU generator
            torch.manual_seed(self._seed)
            drawn = self.augmentation.forward_parameters(images.shape)
        return self.augmentation(images, params=drawn)


def main() -> float:
    """Two epochs on the built-in shapes with kornia's colour jitter and a random affine on the device;
    returns the validation accuracy."""
    import kornia.augmentation as K
    from lightning.pytorch import Trainer, seed_everything

    from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings
    from lightning_aug.data.datasets import SyntheticShapes

    seed_everything(0)
    datamodule = AugDataModule(
        SyntheticShapes(train_per_class=24, val_per_class=8),
        device_transforms=[
            KorniaOp(K.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.8)),
            KorniaOp(K.RandomAffine(degrees=10.0, translate=(0.1, 0.1), p=0.5)),
        ],
        loader=LoaderSettings(batch_size=32, num_workers=0),
        seed=0,
    )
    model = ImageClassifier(num_classes=10, width=16)
    trainer = Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule)
    accuracy = float(trainer.callback_metrics["val/acc"])
    print(f"val/acc {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
