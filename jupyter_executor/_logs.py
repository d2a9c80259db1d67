"""Log files of past runs: ``logs/NAME.log`` is the current run, ``NAME.<stamp>.log`` older ones.

The engine calls :func:`archive` before the first write of each new run, so that a rerun, a
restart or a scheduled run does not overwrite what the previous run printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["archive", "log_stem", "logs_of"]

# A name made only of these, and not too long, is its own file name (as it always was).
_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

#: The stamp of an archived log: when that run last wrote to it, in UTC (so that the names
#: sort in time order also across a daylight-saving change).
_STAMP = "%Y%m%d-%H%M%S-%f"
_STAMP_RE = r"\d{8}-\d{6}-\d{6}"
#: A plain name ending like an archive's stamp: "a.<stamp>.log" would be a run of job "a".
_LOOKS_ARCHIVED = re.compile(r"\." + _STAMP_RE + r"\Z")


def log_stem(name: str) -> str:
    """The ``NAME`` of a job's ``logs/NAME.log``: one file name per job name, never shared.

    A plain name (letters, digits, ``_.-``, at most 100 characters) is used as it is, so the logs
    of such jobs are where they always were, unless it ends like the stamp of an archived log
    (``a.20260101-120000-000000``: its log would pass for an old run of job ``a``). Any other
    name gets a readable slug, cut to 60 characters, then ``~`` (which no plain name has) and
    12 hex digits of a hash of the exact name: ``a b``, ``a_b``, ``a/b`` and ``a?b`` get four
    files, and a 300-character name a file name the file system accepts.

    Examples
    --------
    >>> log_stem("etl-2026.v2")
    'etl-2026.v2'
    >>> log_stem("a b"), log_stem("a/b")
    ('a_b~c8687a08aa5d', 'a_b~c14cddc033f6')
    """
    if _PLAIN.fullmatch(name) and not _LOOKS_ARCHIVED.search(name):
        return name
    slug = _UNSAFE.sub("_", name)[:60] or "_"
    # surrogatepass: a name with lone surrogates (from a non-UTF-8 file name) hashes too.
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug}~{digest}"


def archive(log_path: Path, keep: int = 20) -> Path | None:
    """Move the current log of a job aside before a new run writes it.

    ``logs/NAME.log`` is renamed ``logs/NAME.<YYYYmmdd-HHMMSS-ffffff>.log`` (the time it was last
    written, UTC) when it exists and is not empty; then the oldest archives of NAME beyond
    ``keep`` are deleted.

    Parameters
    ----------
    log_path
        The job's current log file.
    keep
        How many archived logs of this job to keep (0 keeps none).

    Returns
    -------
    Path or None
        The archived file, or None when there was nothing to archive (or ``keep`` is 0).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "job.log").write_text("run 1\\n")
    >>> archived = archive(folder / "job.log")
    >>> archived.read_text(), (folder / "job.log").exists()
    ('run 1\\n', False)
    """
    if keep < 0:
        msg = f"keep must be >= 0, not {keep!r}"
        raise ValueError(msg)
    try:
        stat = log_path.stat()
    except FileNotFoundError:
        return None
    target: Path | None = None
    if stat.st_size > 0:
        name = log_path.name.removesuffix(".log")
        moment = datetime.fromtimestamp(stat.st_mtime, UTC)
        target = log_path.with_name(f"{name}.{moment.strftime(_STAMP)}.log")
        # Two runs that ended within the file system's time resolution get distinct names.
        while target.exists():
            moment += timedelta(microseconds=1)
            target = log_path.with_name(f"{name}.{moment.strftime(_STAMP)}.log")
        try:
            # A hard link fails if the name is taken, where a rename would silently overwrite
            # an archive that another engine sharing the folder made at the same moment.
            os.link(log_path, target)
            os.unlink(log_path)
        except FileNotFoundError:
            return None  # another engine sharing the folder archived it first
        except FileExistsError:
            return archive(log_path, keep)  # taken since the exists() check: pick another
        except OSError:
            # No hard links on this file system: a plain rename (overwrites on a race only).
            try:
                log_path.rename(target)
            except FileNotFoundError:
                return None
    old = _archives(log_path.parent, log_path.name.removesuffix(".log"))
    for path in old[: max(0, len(old) - keep)]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return target if target is not None and target.exists() else None


def logs_of(folder_logs: Path, name_safe: str) -> list[Path]:
    """The log files of one job: archived runs oldest first, then the current log.

    Parameters
    ----------
    folder_logs
        The engine's ``logs`` folder.
    name_safe
        The job's name as used in file names (``NAME`` of ``NAME.log``).

    Returns
    -------
    list of Path
        Existing files only; empty when the job never wrote a log.
    """
    files = _archives(folder_logs, name_safe)
    current = folder_logs / f"{name_safe}.log"
    if current.exists():
        files.append(current)
    return files


def _archives(folder: Path, name: str) -> list[Path]:
    pattern = re.compile(re.escape(name) + r"\.(" + _STAMP_RE + r")\.log")
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is not None:
            found.append((match.group(1), Path(entry.path)))
    found.sort()
    return [path for _, path in found]
