"""A process that imports the apps once and runs each app command in a fresh fork of itself.

An app command of the tests (``lightning-aug-train ...``) spends most of a short run importing torch,
Lightning and the package. This server pays that once per test session: it imports the console scripts'
modules and nothing else (no torch op has run, no thread started), then for each request forks a child
that is the app's process as a user starts it, minus the imports: its own working directory,
environment, ``sys.argv``, standard input from ``/dev/null``, standard output and error to files; the
exit status is the app's. A child's state dies with it, so no run sees another's.

Protocol: one JSON request per line on standard input (``argv``, ``cwd``, ``env``, ``timeout``), one JSON
reply per line on the descriptor given as the first argument (``returncode``, ``stdout``, ``stderr``:
the paths of the two files). Commands that must measure a real start-up (the apps' error times) do not
come here (``run_command(..., fresh=True)``).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

APPS = {
    "lightning-aug-train": "lightning_aug.cli.train",
    "lightning-aug-preview": "lightning_aug.cli.preview",
    "lightning-aug-bench": "lightning_aug.cli.bench",
    "lightning-aug-predict": "lightning_aug.cli.predict",
    "lightning-aug-prepare": "lightning_aug.cli.prepare",
}


def _child(request: dict, out: str, err: str) -> None:
    """Become the app's process and run it; never returns (the status is the app's)."""
    os.setsid()  # its own process group: a timeout stops the app and its workers together
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for path, fd in ((out, 1), (err, 2)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(handle, fd)
        os.close(handle)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [p for p in extra if p not in sys.path]
    options = [o for o in request["env"].get("PYTHONWARNINGS", "").split(",") if o]
    if options:  # as a new interpreter applies PYTHONWARNINGS (the server itself starts without it)
        import warnings

        sys.warnoptions[:] = options
        warnings._processoptions(options)  # type: ignore[attr-defined]
    script = request["argv"][0]
    sys.argv = [script, *request["argv"][1:]]
    main = importlib.import_module(APPS[Path(script).name]).main
    status = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            print(code, file=sys.stderr)
            status = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    sys.exit(status)  # a normal interpreter exit: the app's atexit hooks and buffers run as they would


# what an app run imports (the apps import them lazily, so that an early error is fast); imported once
# here, before any fork. Optional extras the tests use (timm, datasets, litdata, loggers) are left to
# the runs that need them.
PRELOAD = [
    "torch",
    "torchvision.transforms.v2",
    "lightning.pytorch",
    "albumentations",
    "cv2",
    "PIL.Image",
    "hydra.utils",
    "lightning_aug",
    "lightning_aug.datamodule",
    "lightning_aug.models",
    "lightning_aug.data.datasets",
    "lightning_aug.device.mixing",
    "lightning_aug.data.transforms",
    "lightning_aug.presets",
    "lightning_aug.secrets",
    "lightning_aug.conf",
    "lightning_aug.cli.common",
    "lightning_aug.cli.hydra_callbacks",
    "fsspec",
    *APPS.values(),
]


def serve(reply_fd: int) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    replies = os.fdopen(reply_fd, "w", buffering=1)
    folder = Path(tempfile.mkdtemp(prefix="app_server_"))
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    for number, line in enumerate(sys.stdin):
        request = json.loads(line)
        out, err = str(folder / f"{number}.out"), str(folder / f"{number}.err")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request, out, err)
        deadline = time.monotonic() + request["timeout"]
        status = None
        while status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
            elif time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = "timeout"
            else:
                time.sleep(0.01)
        replies.write(json.dumps({"returncode": status, "stdout": out, "stderr": err}) + "\n")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
