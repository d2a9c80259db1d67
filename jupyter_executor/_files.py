"""Files and folders of the engine, readable by their owner only.

The engine's folder holds commands, output and tracebacks (``history.db``, ``logs/``): it is
created ``0o700`` and its files ``0o600``, whatever the umask. Folders and files that already
exist are left as they are (a folder shared on purpose stays shared).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["create_private", "private_dir", "private_opener"]


def private_dir(path: Path, depth: int = 0) -> None:
    """Create the folder ``path`` user-only (0o700) when it is missing.

    Parameters
    ----------
    path
        The folder.
    depth
        How many missing parents to create user-only too (``logs/`` and the engine's folder:
        1); parents above are created as ``mkdir -p`` would.
    """
    if path.is_dir():
        return
    if depth > 0:
        private_dir(path.parent, depth - 1)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return  # made meanwhile, by another engine sharing the folder
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """An ``opener`` for :func:`open` that creates a missing file user-only (0o600)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return os.open(path, flags & ~os.O_EXCL)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)  # the mode given to open is masked by the umask
    return fd


def create_private(path: Path) -> None:
    """Create the empty file ``path`` user-only (0o600), unless it exists."""
    with contextlib.suppress(FileExistsError):
        os.close(private_opener(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
