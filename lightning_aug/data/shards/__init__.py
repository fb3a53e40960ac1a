"""Shards: a dataset written once as chunks (LitData's format) and read back checked.

- :mod:`~lightning_aug.data.shards.layout`: the layout written and the only one read; chunk files.
- :mod:`~lightning_aug.data.shards.storage`: local folders and ``s3://`` by name, timeouts, retries.
- :mod:`~lightning_aug.data.shards.metadata`: ``lightning_aug.json`` read and checked.
- :mod:`~lightning_aug.data.shards.chunks`: chunks as verified local files (cache, prefetch).
- :mod:`~lightning_aug.data.shards.prepare`: ``lightning-aug-prepare`` (needs LitData).
- :mod:`~lightning_aug.data.shards.verify`: a shard folder checked end to end.

The dataset factory is :class:`lightning_aug.data.datasets.streaming.StreamingShards`.
"""
