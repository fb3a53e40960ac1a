"""Hydra apps on the ``conf/`` tree (shipped as ``lightning_aug.conf``): train, preview."""
