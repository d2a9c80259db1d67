"""The engine's tables: :meth:`Engine.list` (one row per job) and :meth:`Engine.history`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from ._policies import describe_schedule
from ._snapshot import snapshot_of

if TYPE_CHECKING:
    import pandas as pd

    from .job import Job

#: Columns of :meth:`Engine.list`, in order.
COLUMNS = (
    "name", "status", "backend", "requires", "allows", "forever", "submitted", "started",
    "finished", "duration", "attempts", "result", "error", "tail", "progress", "pid",
    "command", "cwd", "env", "schedule", "engine_id",
)  # fmt: skip


def jobs_frame(jobs: Iterable[Job], engine_id: str, next_run: bool) -> pd.DataFrame:
    """The rows of :meth:`Engine.list` for ``jobs`` (see :data:`COLUMNS`)."""
    import pandas as pd

    rows = []
    now = time.time()
    for job in jobs:
        snap = snapshot_of(job, now)
        info = snap.info_dict(now)
        life = job.runstate.life
        schedule = describe_schedule(life.schedule) if life is not None else None
        rows.append(
            (
                info["name"],
                info["status"],
                info["backend"],
                list(info["requires"]),
                list(snap.allows),
                info["forever"],
                _dt(info["submitted"]),
                _dt(info["started"]),
                _dt(info["finished"]),
                info["duration"],
                info["attempts"],
                info["result"],
                info["error"],
                job.tail(3),
                info["progress"],
                snap.pid,
                info["description"],
                os.fspath(job.cwd) if job.cwd is not None else None,
                sorted(job.env) if job.env else [],
                schedule,
                engine_id,
            )
            + ((_dt(info["next_run"]), info["restarts"], info["url"]) if next_run else ())
        )
    columns = list(COLUMNS) + (["next_run", "restarts", "url"] if next_run else [])
    return pd.DataFrame(rows, columns=columns)


def _dt(t: float | None) -> datetime | None:
    return None if t is None or t != t else datetime.fromtimestamp(t)  # t != t: NaN
