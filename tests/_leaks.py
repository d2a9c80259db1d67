"""Checks that nothing an engine started survives it."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterable

import psutil
import pytest


def kill_and_reap(procs: Iterable[subprocess.Popen[str]], timeout: float = 30.0) -> None:
    """Kill each of ``procs`` still running, wait for it and close its stdout pipe."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("jupyter-executor")]


def child_processes() -> list[psutil.Process]:
    # multiprocessing's resource tracker (started once per interpreter when dask spawns its
    # nanny processes) is Python's own and lives until the interpreter exits, by design.
    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if proc.is_running() and "resource_tracker" not in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


def assert_nothing_left(before_children: set[int], timeout: float = 10.0) -> None:
    """No engine thread and no new child process may survive (allow them time to exit)."""
    deadline = time.monotonic() + timeout
    while True:
        threads = engine_threads()
        children = [
            p for p in child_processes()
            if p.pid not in before_children and p.status() != psutil.STATUS_ZOMBIE
        ]  # fmt: skip
        if not threads and not children:
            return
        if time.monotonic() > deadline:
            names = [t.name for t in threads]
            cmds = [" ".join(p.cmdline()) for p in children]
            pytest.fail(f"left behind: threads {names}, processes {cmds}")
        time.sleep(0.05)


def marked(marker: str) -> list[psutil.Process]:
    """The live processes whose command line holds ``marker`` (supervisor and command)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in (proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found
