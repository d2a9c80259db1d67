"""Which operating systems the engine runs on, said once and early.

The engine relies on POSIX: process groups and sessions (``start_new_session``, ``killpg``) so
that a kernel interrupt does not reach a job's processes and a cancel reaches all of them,
``prctl(PR_SET_PDEATHSIG)`` (Linux) and a supervisor so that nothing outlives a killed kernel,
and file modes for the history. On Windows none of these exist, and half-working jobs that
cannot be stopped would be worse than a clear refusal.
"""

from __future__ import annotations

import os
import sys

from .errors import UnsupportedPlatform

__all__ = ["check_supported"]


def check_supported(what: str) -> None:
    """Raise :class:`UnsupportedPlatform` unless this is a POSIX system (Linux, macOS).

    Examples
    --------
    >>> check_supported("Engine()")  # on Linux and macOS: nothing happens
    """
    if os.name != "posix":
        msg = (
            f"{what}: jupyter_executor runs on POSIX systems (Linux, macOS); {sys.platform} "
            "is not supported yet (run the kernel in WSL 2 on Windows)"
        )
        raise UnsupportedPlatform(msg)
