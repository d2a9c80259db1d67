"""Make-like jobs: freshness of ``inputs=`` / ``outputs=``, and the identity ``resume`` matches."""

from __future__ import annotations

import builtins
import glob
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from ._text import safe_text
from .job import Job

logger = logging.getLogger("jupyter_executor")


def _where(job: Job) -> str | None:
    """The folder relative inputs and outputs of ``job`` are in: where they were found when it
    started. Not the kernel's folder when checked: a ``%cd`` while the job ran would have its
    outputs looked for, and recorded, elsewhere."""
    life = job.runstate.life
    if life is not None and life.base is not None:
        return life.base
    return os.fspath(job.cwd) if job.cwd is not None else None


def record_files(store: Any, job: Job, attempt: int) -> None:
    """(worker thread) Record the paths and content hashes of a run's inputs and outputs."""
    life = job.runstate.life
    assert life is not None
    cwd = _where(job)
    files: builtins.list[tuple[str, str, str | None, int, float]] = []
    try:
        for role, patterns in (("input", life.inputs), ("output", life.outputs)):
            for paths in _expand(patterns, cwd).values():
                for path in paths:
                    if path.is_file():
                        stat = path.stat()
                        files.append(
                            (
                                role,
                                safe_text(str(path.resolve())),
                                sha256_of(path),
                                stat.st_size,
                                stat.st_mtime,
                            )
                        )
        if files:
            # safe_text: SQLite refuses a non-UTF-8 file name's lone surrogates.
            store.record_files(safe_text(str(job.name)), attempt, files)
    except Exception:
        logger.exception("jupyter_executor: recording the files of %s failed", job.name)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _expand(patterns: tuple[str, ...], cwd: str | None) -> dict[str, builtins.list[Path]]:
    base = Path(cwd) if cwd else Path.cwd()
    found: dict[str, builtins.list[Path]] = {}
    for pattern in patterns:
        path = Path(pattern)
        if glob.has_magic(pattern):
            # The folder is escaped: in "exp [1]/" the brackets are a name, not a pattern.
            where = pattern if path.is_absolute() else f"{glob.escape(str(base))}/{pattern}"
            matches = sorted(glob.glob(where, recursive=True))
            # A dangling symlink that a glob matches is missing, as it is when named plainly.
            found[pattern] = [Path(p) for p in matches if os.path.exists(p)]
            continue
        if not path.is_absolute():
            path = base / path
        found[pattern] = [path] if path.exists() else []
    return found


def missing_outputs(job: Job) -> builtins.list[str]:
    assert job.runstate.life is not None
    return [p for p, files in _expand(job.runstate.life.outputs, _where(job)).items() if not files]


def freshness(job: Job, resume: bool, store: Any, force: bool = False) -> tuple[str, str | None]:
    """(worker thread) Decide whether a make-like job must run: ``("run", identity)`` or a
    reason to skip it. Hashes the inputs' contents, which may take a while for big files."""
    life = job.runstate.life
    assert life is not None
    cwd = life.base = os.fspath(job.cwd) if job.cwd is not None else os.getcwd()
    inputs = _expand(life.inputs, cwd)
    missing = [p for p, files in inputs.items() if not files]
    if missing:
        msg = f"job {job.name!r} cannot start: its inputs do not exist: {', '.join(missing)}"
        raise FileNotFoundError(msg)
    identity = _identity(job, inputs)
    if life.force or force:
        return "run", identity
    outputs = _expand(life.outputs, cwd)
    outputs_exist = all(files for files in outputs.values())
    if resume and outputs_exist and _succeeded_before(job, store, identity):
        return "up to date: resumed from an identical earlier run", identity
    if not life.outputs or not outputs_exist:
        return "run", identity
    return ("up to date" if _newer(outputs, inputs) else "run"), identity


def _succeeded_before(job: Job, store: Any, identity: str) -> bool:
    """True when the history holds a successful run of ``job`` with the same identity."""
    if store is None:
        return False
    store.flush()
    return bool(store.last_success(str(job.name), identity))


def _identity(job: Job, inputs: dict[str, builtins.list[Path]]) -> str:
    """What a run is, for ``resume``: the job's kind and command, its inputs' paths and bytes."""
    digest = hashlib.sha256(repr((job.kind, job.describe(), getattr(job, "source", None))).encode())
    for pattern in sorted(inputs):
        for path in inputs[pattern]:
            digest.update(os.fsencode(path))  # (a non-UTF-8 file name has lone surrogates)
            if path.is_file():
                with open(path, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
    return digest.hexdigest()


def _newer(outputs: dict[str, builtins.list[Path]], inputs: dict[str, builtins.list[Path]]) -> bool:
    """True when the oldest output is no older than the newest input (or there is no input)."""
    newest_input = max(
        (p.stat().st_mtime for files in inputs.values() for p in files), default=None
    )
    oldest_output = min(p.stat().st_mtime for files in outputs.values() for p in files)
    return newest_input is None or oldest_output >= newest_input
