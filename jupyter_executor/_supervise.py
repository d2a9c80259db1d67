"""Supervisor of a subprocess job: ``python -S _supervise.py [options] -- COMMAND...``.

Standalone (standard library only, run with ``-S`` so that it starts in a few milliseconds). It
is the leader of the job's process group and runs the command as its child.

- Attached jobs: it asks the kernel to signal it when the kernel's thread that started it dies
  (``PR_SET_PDEATHSIG``), and also notices being re-parented; either way it terminates its whole
  group, so a kernel killed with SIGKILL leaves no orphan behind.
- Detached jobs (``--detached``): it ignores hang-ups and outlives the kernel; the command's
  output goes to the log file the engine opened for it.
- ``--exit-file F``: the command's exit status is written to F (atomically), so that an engine
  that re-attaches to a detached job in a new kernel learns how it ended.

Its own exit status mirrors the command's, including death by a signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def _parse(argv: list[str]) -> tuple[bool, str | None, float, list[str]]:
    detached, exit_file, grace = False, None, 2.0
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--detached":
            detached = True
        elif argv[i] == "--exit-file":
            i += 1
            exit_file = argv[i]
        elif argv[i] == "--grace":
            i += 1
            grace = float(argv[i])
        i += 1
    return detached, exit_file, grace, argv[i + 1 :]


def _write_exit(path: str, returncode: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"returncode": returncode, "finished": time.time()}, f)
    os.replace(tmp, path)


def main() -> None:
    detached, exit_file, grace, command = _parse(sys.argv[1:])
    parent = os.getppid()
    stopping = threading.Event()

    def stop_group(*_: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(0, signal.SIGTERM)

        def kill_later() -> None:
            time.sleep(grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(0, signal.SIGKILL)

        threading.Thread(target=kill_later, daemon=True).start()

    signal.signal(signal.SIGTERM, stop_group)
    if detached:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    else:
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the kernel died before the request took effect
            stop_group()

        def watch_parent() -> None:
            # Backstop for PDEATHSIG, which follows the thread that forked us, not the process.
            while not stopping.is_set():
                if os.getppid() != parent:
                    stop_group()
                    return
                time.sleep(0.5)

        threading.Thread(target=watch_parent, daemon=True).start()
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        if exit_file:
            _write_exit(exit_file, 127)
        sys.exit(127)
    while True:
        try:
            returncode = child.wait()
            break
        except KeyboardInterrupt:  # a stray SIGINT: the job decides for itself
            continue
    if exit_file:
        _write_exit(exit_file, returncode)
    sys.stdout.flush()
    if returncode < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL/SIGSTOP have no handler
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    sys.exit(returncode)


if __name__ == "__main__":
    main()
