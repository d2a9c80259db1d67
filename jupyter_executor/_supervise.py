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
- ``--claim-file F``: before anything else it creates F holding its pid, atomically and only if
  F does not exist; if F exists it exits at once (status 125) without running the command. The
  engine commits the job's record before it starts the supervisor, so an engine killed in
  between leaves a record without a pid: the next engine reads the pid from F, or, finding no F,
  creates F itself, which stops a supervisor still starting from running the command. Either
  way nothing runs unknown to the history.

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


#: Exit status of a supervisor whose claim file was taken first (by an engine that found the
#: record of a job whose kernel died before it could know the job's pid).
_NOT_CLAIMED = 125


def _parse(argv: list[str]) -> tuple[bool, str | None, str | None, float, list[str]]:
    detached, exit_file, claim_file, grace = False, None, None, 2.0
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--detached":
            detached = True
        elif argv[i] == "--exit-file":
            i += 1
            exit_file = argv[i]
        elif argv[i] == "--claim-file":
            i += 1
            claim_file = argv[i]
        elif argv[i] == "--grace":
            i += 1
            grace = float(argv[i])
        i += 1
    return detached, exit_file, claim_file, grace, argv[i + 1 :]


def claim(path: str, content: str) -> bool:
    """Create ``path`` holding ``content`` unless it exists; True when this call created it.

    Atomic, content included (written aside, then hard-linked into place): a reader never
    sees it empty. Also used by the engine, to claim a job that never started.
    """
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content.encode())
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def _write_exit(path: str, returncode: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"returncode": returncode, "finished": time.time()}, f)
    os.replace(tmp, path)


def _main_thread_only() -> None:
    """Block SIGTERM in the calling (helper) thread, so that the kernel delivers it to the main
    thread.

    A signal sent to the process goes to any thread that does not block it. Python runs its
    handler in the main thread only, between bytecodes: delivered to a helper thread, it would
    wait until the main thread's ``waitpid`` (blocked for as long as the command runs) returns,
    so a supervisor whose kernel died could go on running its command (seen in CI, rarely).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def main() -> None:
    detached, exit_file, claim_file, grace, command = _parse(sys.argv[1:])
    if claim_file is not None and not claim(claim_file, json.dumps({"pid": os.getpid()})):
        sys.exit(_NOT_CLAIMED)  # the next engine recorded this job as never started
    parent = os.getppid()
    main = threading.main_thread().ident or threading.get_ident()
    stopping = threading.Event()

    def stop_group(*_: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(0, signal.SIGTERM)

        def kill_later() -> None:
            _main_thread_only()
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
        # The kernel died before the request took effect (or before we read our parent: then
        # we were already re-parented to init).
        if os.getppid() != parent or parent == 1:
            stop_group()

        def watch_parent() -> None:
            # Backstop for PDEATHSIG, which follows the thread that forked us, not the process.
            # It signals the main thread rather than calling stop_group: signal.signal() works
            # only there (here it raised, and the group was never stopped).
            _main_thread_only()
            while not stopping.is_set():
                if os.getppid() != parent:
                    signal.pthread_kill(main, signal.SIGTERM)
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
