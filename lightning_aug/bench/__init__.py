"""Benchmarks runnable as modules (``python -m lightning_aug.bench.mixup``)."""
