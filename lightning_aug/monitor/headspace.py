"""Headspace: the step time of a model when its batches are already there (Meta's SPDL calls this the
headspace analysis, done by hand). :func:`replay_steps` trains on batches cached during the fit,
times it, and puts the model, optimizer, gradients and random streams back as they were, so the run
goes on as if nothing had happened (tested: the same weights with and without it)."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

__all__ = ["replay_steps"]


def _no_log(*args: Any, **kwargs: Any) -> None:
    """What ``self.log`` does while batches are replayed: nothing (the replay is not the run)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loss(output: Any) -> torch.Tensor:
    loss = output["loss"] if isinstance(output, dict) else output
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"DataStallMonitor(headspace=True): training_step returned {type(output).__name__}")
    return loss


def replay_steps(trainer: Trainer, module: LightningModule, batches: Sequence[Any], passes: int = 2) -> float:
    """Seconds per training step (forward, backward, optimizer step) on ``batches``, already on the
    device and through the device stage, replayed ``passes`` times (the first pass warms up and is
    not timed). Nothing of it stays: the weights, buffers, optimizer state, gradients and random
    generators are restored afterwards, and the module's ``self.log`` does nothing meanwhile."""
    optimizer = trainer.optimizers[0]
    device = module.device
    weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
    optimizer_state = copy.deepcopy(optimizer.state_dict())  # its tensors are the live ones
    grads = {p: p.grad.detach().clone() for p in module.parameters() if p.grad is not None}
    generators = (
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        np.random.get_state(),
        random.getstate(),
    )
    module.log, module.log_dict = _no_log, _no_log  # type: ignore[method-assign]
    try:
        elapsed = 0.0
        for done in range(passes):
            _sync(device)
            start = time.perf_counter()
            for index, batch in enumerate(batches):
                optimizer.zero_grad(set_to_none=True)
                _loss(trainer.strategy.training_step(batch, index)).backward()
                optimizer.step()
            _sync(device)
            if done or passes == 1:
                elapsed += time.perf_counter() - start
        return elapsed / (max(passes - 1, 1) * len(batches))
    finally:
        del module.log, module.log_dict
        module.load_state_dict(weights)
        optimizer.load_state_dict(optimizer_state)
        for p in module.parameters():
            p.grad = grads.get(p)
        torch.set_rng_state(generators[0])
        if generators[1] is not None:
            torch.cuda.set_rng_state_all(generators[1])
        np.random.set_state(generators[2])
        random.setstate(generators[3])
