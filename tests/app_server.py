"""A process that imports the apps once and runs each app command in a fresh fork of itself.

An app command of the tests (``lightning-aug-train ...``) spends most of a short run importing torch,
Lightning and the package. This server pays that once per test session: it imports the console scripts'
modules and nothing else (no torch op has run, no thread started), then for each request forks a child
that is the app's process as a user starts it, minus the imports: its own working directory,
environment, ``sys.argv`` and ``sys.path[0]``, standard input from ``/dev/null``, standard output and
error to files; the exit status is the app's. A child's state dies with it, so no run sees another's.
Besides the console scripts it runs ``python -m <module> ...`` and ``python <script>.py ...`` (the
docstring commands, the examples) the same way.

Protocol: one JSON request per line on standard input (``argv``, ``cwd``, ``env``, ``timeout``), one
JSON reply per line on the descriptor given as the first argument (``returncode``, ``stdout``,
``stderr``: the paths of the two files). Commands that must measure a real start-up do not come here
(``run_command(..., fresh=True)``), nor do ``python -c`` checks of what a start imports.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import json
import os
import runpy
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
    options = [o for o in request["env"].get("PYTHONWARNINGS", "").split(",") if o]
    if options:  # as a new interpreter applies PYTHONWARNINGS (the server itself starts without it)
        import warnings

        sys.warnoptions[:] = options
        warnings._processoptions(options)  # type: ignore[attr-defined]
    argv = request["argv"]
    if Path(argv[0]).name in APPS:  # a console script: sys.path[0] is its folder
        sys.path[0] = str(Path(argv[0]).parent)
        sys.argv = list(argv)
        run = importlib.import_module(APPS[Path(argv[0]).name]).main
    elif argv[1] == "-m":  # python -m module: sys.path[0] is the working directory
        sys.path[0] = os.getcwd()
        sys.argv = [argv[2], *argv[3:]]
        run = functools.partial(runpy.run_module, argv[2], run_name="__main__", alter_sys=True)
    else:  # python script.py: sys.path[0] is the script's folder
        sys.path[0] = str(Path(argv[1]).resolve().parent)
        sys.argv = list(argv[1:])
        run = functools.partial(runpy.run_path, argv[1], run_name="__main__")
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[1:1] = [p for p in extra if p not in sys.path]  # after sys.path[0], as Python puts them
    status = 0
    try:
        run()
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
    # the exit of an interpreter, less the teardown of every module the server imported (a second or
    # more with torch loaded): the app's atexit hooks run (logging, multiprocessing, loggers), the
    # buffers are flushed, then the process ends with the app's status
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


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
