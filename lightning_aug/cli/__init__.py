"""Hydra apps on the ``conf/`` tree (shipped as ``lightning_aug.conf``): train, preview.

The app modules import torch and Lightning only inside their functions, so that Hydra's own work
(``--help``, ``--cfg``, a bad override) answers without that start-up cost.
"""

CONFIG_PATH = "pkg://lightning_aug.conf"
