"""Hydra apps on the ``conf/`` tree (shipped as ``lightning_aug.conf``): train, preview.

The app modules import torch and Lightning only inside their functions, so that Hydra's own work
(``--help``, ``--cfg``, a bad override) answers without that start-up cost.
"""

CONFIG_PATH = "pkg://lightning_aug.conf"


def precheck(config_name: str, app: str) -> None:
    """Compose the app's config from the command line before any heavy import, as Hydra is about to:
    an unknown option, a bad override or a missing value (``???``) becomes one line on stderr and exit
    status 2, in about a second, the same status as the configuration errors found later while
    building (:func:`lightning_aug.cli.common.config_errors`). Command lines with flags (``--cfg``,
    ``-m``, ``--config-dir``, ``--help``) are left to Hydra."""
    import sys

    args = sys.argv[1:]
    if any(arg.startswith("-") for arg in args):
        return
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = [arg for arg in args if not arg.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
            cfg = compose(config_name, overrides=overrides)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException) as err:
        message = " ".join(str(err).split())  # Hydra's list of options, on one line
        message = message.split(" Config search path:")[0]
        print(f"{app}: config error: {clean(message)}", file=sys.stderr)
        raise SystemExit(2) from None


def clean(message: str) -> str:
    """``message`` without the credentials given on this command line (:mod:`lightning_aug.secrets`)."""
    import sys

    from lightning_aug.secrets import redact_text, secrets_in_overrides

    return redact_text(message, secrets_in_overrides(sys.argv[1:]))
