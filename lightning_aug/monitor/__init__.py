"""Is the GPU waiting for data? :class:`DataStallMonitor` measures it per training step and says what
limits the run and what to change (:mod:`~lightning_aug.monitor.report`); ``headspace=True`` also
times a step with the batches already there (:mod:`~lightning_aug.monitor.headspace`)."""

from lightning_aug.monitor.callback import DataStallMonitor
from lightning_aug.monitor.report import StallReport

__all__ = ["DataStallMonitor", "StallReport"]
