"""Hydra apps on the ``conf/`` tree (shipped as ``lightning_aug.conf``): train, preview.

The app modules import torch and Lightning only inside their functions, so that Hydra's own work
(``--help``, ``--cfg``, a bad override) answers without that start-up cost.
"""

import os
from typing import Any

# albumentations asks PyPI for a newer version when imported: a network request from a training app,
# and two warning lines before any error when offline. The apps do not ask (a user's own setting wins).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

CONFIG_PATH = "pkg://lightning_aug.conf"

# the top-level keys of the train config that an app composed on it does not read (preview shows the
# batches; prepare writes shards of the data): given on its command line they are warned about
NOT_READ = {
    "preview": ("model", "trainer", "logger", "ckpt_path", "test"),
    "bench": ("logger", "ckpt_path", "test"),
    "prepare": (
        "augment",
        "loader",
        "datamodule",
        "sampler",
        "mixup",
        "callbacks",
        "model",
        "trainer",
        "logger",
        "ckpt_path",
        "test",
    ),
}


def unread_overrides(config_name: str, overrides: list[str]) -> list[str]:
    """The overrides of ``overrides`` that set a key or choose a group that the app of ``config_name``
    does not read (:data:`NOT_READ`), each as a line saying so."""
    ignored = NOT_READ.get(config_name, ())
    lines = []
    for override in overrides:
        key = override.lstrip("+~").partition("=")[0]
        top = key.partition(".")[0].partition("/")[0]
        if top in ignored:
            lines.append(
                f"{override} does nothing here: {config_name} does not read {top} (lightning-aug-train does)"
            )
    return lines


def import_from_cwd() -> None:
    """Let ``_target_`` name modules of the current folder, as ``python -m`` does (a console script's
    ``sys.path`` starts with its own folder instead): ``model._target_=my_package.MyModule`` run from
    the folder that holds ``my_package``."""
    import os
    import sys

    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def precheck(config_name: str, app: str) -> None:
    """Compose the app's config from the command line before any heavy import, as Hydra is about to:
    an unknown option, a bad override or a missing value (``???``) becomes one line on stderr and exit
    status 2, in about a second, the same status as the configuration errors found later while
    building (:func:`lightning_aug.cli.common.config_errors`). Command lines with flags (``--cfg``,
    ``-m``, ``--config-dir``, ``--help``) are left to Hydra."""
    import sys

    import_from_cwd()
    sys.argv[1:] = quote_values(sys.argv[1:])
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
        message = _missing_path(cfg)  # before resolving: augment=auto would read the data first
        if message is None:
            OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
            message = _unread_top_level(cfg, config_name, overrides)
    except (HydraException, OmegaConfBaseException) as err:
        message = " ".join(str(err).split())  # Hydra's list of options, on one line
        message = message.split(" Config search path:")[0]
        message = _suggest(message, config_name, overrides) or message
    if message:
        print(f"{app}: config error: {clean(message)}", file=sys.stderr)
        raise SystemExit(2) from None
    for line in unread_overrides(config_name, overrides):
        print(f"{app}: warning: {line}", file=sys.stderr)


# the paths a config names that must exist before anything is imported: (data target, key, message)
_PATHS = (
    ("lightning_aug.data.datasets.ImageFolder", "root", "image folder root {!r} does not exist (data.root)"),
    ("lightning_aug.data.datasets.FileList", "file", "file list {!r} does not exist (data.file)"),
)


def _missing_path(cfg: Any) -> str | None:
    """A local path of the config that does not exist (the data's folder or file, a checkpoint to
    resume or predict with), said in about a second instead of after importing torch; ``None``
    where all are there (URLs and other sources are checked where they are read)."""
    import os

    data = cfg.get("data")
    target = data.get("_target_") if data is not None and hasattr(data, "get") else None
    named = [(data.get(key) if target == name else None, message) for name, key, message in _PATHS]
    if data is not None and hasattr(data, "get") and "predict_root" in data:  # predict's, ImageFolder's
        named.append((data.get("predict_root"), "predict folder {!r} does not exist (data.predict_root)"))
    for value, message in named:
        if isinstance(value, str) and "://" not in value and not os.path.exists(os.path.expanduser(value)):
            return message.format(os.path.expanduser(value))
    checkpoint = cfg.get("ckpt_path")
    if isinstance(checkpoint, str) and "://" not in checkpoint and not os.path.exists(checkpoint):
        return f"ckpt_path {checkpoint!r} does not exist (a run's checkpoint: <run>/checkpoints/*.ckpt)"
    return None


def _unread_top_level(cfg: Any, config_name: str, overrides: list[str]) -> str | None:
    """A refusal of ``+key=value`` overrides that add a top-level key the app does not read (Hydra
    accepts them; nothing would use them: ``+sampler=balanced`` before ``sampler`` was a group), with
    the key of the config that is nearest; ``None`` where there is none."""
    import difflib

    from hydra import compose, initialize_config_module

    added = [o for o in overrides if o.startswith("+") and "=" in o and "." not in o.partition("=")[0]]
    if not added:
        return None
    rest = [o for o in overrides if o not in added]
    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        base = compose(config_name, overrides=rest)
    for override in added:
        key, _, value = override[1:].partition("=")
        if key in base or key not in cfg:  # a config group appended, or a key the app has
            continue
        paths = _key_paths(base)
        leaf = [p for p in paths if p.rsplit(".", 1)[-1] == key]
        near = leaf or difflib.get_close_matches(key, paths, n=1, cutoff=0.6)
        hint = (
            f": did you mean {near[0]}={value}?" if near else f" (its keys: {sorted(str(k) for k in base)})"
        )
        return f"+{key}={value} adds a top-level key {key} that nothing reads{hint}"
    return None


def _suggest(message: str, config_name: str, overrides: list[str]) -> str | None:
    """For Hydra's "Could not override 'a.b'" of a key that does not exist: the nearest real key
    (Hydra's own hint, "+a.b=...", adds the misspelt key and leads to a second error)."""
    import difflib
    import re

    from hydra import compose, initialize_config_module
    from omegaconf import DictConfig, OmegaConf

    group = re.search(r"Multiple values for (\S+)\. To override a value use 'override", message)
    if group is not None:  # +group=option: the group is there already, chosen without the +
        given = next((o for o in overrides if o.startswith(f"+{group.group(1)}=")), None)
        if given is not None:
            return f"{group.group(1)} is a config group: {given[1:]} (without +) chooses its option"
    found = re.search(r"Could not override '([^']+)'", message)
    if found is None or "To append to your config use +" not in message:
        return None
    key = found.group(1)
    parent, _, leaf = key.rpartition(".")
    rest = [o for o in overrides if o.partition("=")[0].lstrip("+~") != key]
    value = next((o.partition("=")[2] for o in overrides if o.partition("=")[0] == key), "...")
    try:
        with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
            cfg = compose(config_name, overrides=rest)
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # another override is bad too: Hydra's message stands
        return None
    if not isinstance(node, DictConfig):
        return None
    keys = [str(k) for k in node]
    match = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.6)
    prefix = f"{parent}." if parent else ""
    if match:
        return f"unknown key {key}: did you mean {prefix}{match[0]}? ({prefix}{match[0]}={value})"
    elsewhere = [path for path in _key_paths(cfg) if path.rsplit(".", 1)[-1] == leaf]
    if elsewhere:  # the key of another group (data.num_aug_repeats is datamodule's)
        owner = elsewhere[0].rsplit(".", 1)[0]
        return f"unknown key {key}: {leaf} belongs to {owner}: {elsewhere[0]}={value}"
    return (
        f"unknown key {key}: {parent or 'the config'} has {sorted(keys)}; a key of your own is added "
        f"with +{key}={value}"
    )


def _key_paths(node: Any, prefix: str = "", depth: int = 3) -> list[str]:
    """The dotted paths of the keys of a composed config, ``depth`` levels down (``hydra`` left out)."""
    from omegaconf import DictConfig

    paths: list[str] = []
    if not isinstance(node, DictConfig) or depth == 0:
        return paths
    for key in node:
        if not prefix and key == "hydra":
            continue
        path = f"{prefix}{key!s}"
        paths.append(path)
        try:
            child = node._get_node(key)
        except Exception:  # an interpolation that does not resolve here
            continue
        paths += _key_paths(child, f"{path}.", depth - 1)
    return paths


def quote_values(args: list[str]) -> list[str]:
    """The overrides with a value Hydra's grammar cannot read as written but can quoted (a path with
    ``=``, as Lightning names checkpoints: ``ckpt_path=runs/x/epoch=0-step=10.ckpt``) quoted, so
    that they work as typed; every other argument as it is."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and "=" in value and not arg.startswith("-") and value[:1] not in ("'", '"'):
            try:
                parser.parse_overrides([arg])
            except HydraException:
                quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
                try:
                    parser.parse_overrides([f"{key}={quoted}"])
                    arg = f"{key}={quoted}"
                except HydraException:
                    pass  # left to Hydra's own message
        out.append(arg)
    return out


def clean(message: str) -> str:
    """``message`` without the credentials given on this command line (:mod:`lightning_aug.secrets`)."""
    import sys

    from lightning_aug.secrets import redact_text, secrets_in_overrides

    return redact_text(message, secrets_in_overrides(sys.argv[1:]))
