"""A kornia augmentation on whole training batches on the device.

A kornia op (or any module of image batches) plugs in either way, and sees floats in [0, 1] both ways:

- as a device op, ``device_transforms=[ModuleOp(K.ColorJitter(...))]`` (before the normalisation);
- as a callback, ``callbacks=[BatchOps([ModuleOp(K.ColorJitter(...))])]``: ``BatchOps`` declares
  ``pixels="unit"``, so the device stage gives it the batch in [0, 1] and normalises it again after
  (a ``BatchTransform`` of your own declares the pixels it wants the same way; mixing takes the
  normalised ones).

Either way kornia's random parameters come from the batch's own generator (a function of the run
seed, the rank, the epoch and the batch, :class:`lightning_aug.device.context.BatchContext`), so a
run with it is reproducible, resumes on the same augmentation, and gives the same images plugged
either way (``tests/test_batch_context.py``).

Run:  .venv/bin/python examples/kornia_op.py        (needs kornia: pip install kornia)
"""

from __future__ import annotations

from lightning_aug.device.ops import ModuleOp

KorniaOp = ModuleOp  # any kornia.augmentation module (or AugmentationSequential) as a device op


def main() -> float:
    """Two epochs on the built-in shapes with kornia's colour jitter and a random affine on the device;
    prints and returns the validation accuracy.

    What it shows: the ops run on whole batches on the device, drawn from each batch's generator
    (the same number in every run). Its number is near chance (0.1: ten classes), by design: 240
    images for two epochs (14 steps, about 10 s on a 2-core CPU) are far too few to learn the shapes;
    the default recipe (``lightning-aug-train``, 3,000 images, five epochs) reaches about 0.96.
    """
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
    print(
        f"val/acc {accuracy:.3f} (chance 0.1: two epochs of 240 images show the ops run, not a trained model)"
    )
    return accuracy


if __name__ == "__main__":
    main()
