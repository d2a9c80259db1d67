"""HPC clusters for the dask backend, through dask-jobqueue: SLURM, PBS, SGE and LSF.

``Engine(dask="slurm", cluster_options={"cores": 8, "memory": "16GB", "queue": "short"})``
calls :func:`make_cluster`: a dask scheduler starts in this process and each dask worker is a
batch job (``sbatch``/``qsub``/``bsub``) running the script that :func:`job_script` shows.
Dask-backend jobs then run on those workers. Nothing is submitted to the queue until the
cluster is scaled (:func:`scale`) or made adaptive (:func:`adapt`).

The kind ``"local"`` is dask-jobqueue's own test cluster: the same job script, run as a local
process instead of a batch job; it exercises the whole path on a machine with no scheduler.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = [
    "KINDS",
    "adapt",
    "cluster_class",
    "import_jobqueue",
    "job_script",
    "make_cluster",
    "scale",
]

#: The kinds of cluster, with their dask-jobqueue class.
KINDS: dict[str, str] = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "local": "LocalCluster",
}

_HINT = (
    "HPC clusters need dask-jobqueue: pip install 'jupyter_executor[hpc]' "
    "(or pip install dask-jobqueue)"
)


def cluster_class(kind: str) -> type[Any]:
    """The dask-jobqueue cluster class for ``kind`` ("slurm", "pbs", "sge", "lsf", "local").

    Raises
    ------
    ValueError
        ``kind`` is not one of :data:`KINDS`.
    ImportError
        dask-jobqueue is not installed (the message says how to install it).

    Examples
    --------
    >>> from jupyter_executor._hpc import cluster_class
    >>> cluster_class("SLURM").__name__
    'SLURMCluster'
    """
    if not isinstance(kind, str) or kind.lower() not in KINDS:
        msg = f"unknown cluster kind {kind!r}; use one of {', '.join(KINDS)}"
        raise ValueError(msg)
    kind = kind.lower()
    dask_jobqueue = import_jobqueue()
    module = dask_jobqueue.local if kind == "local" else dask_jobqueue
    cls: type[Any] = getattr(module, KINDS[kind])
    return cls


_import_lock = threading.Lock()


def import_jobqueue() -> ModuleType:
    """Import dask-jobqueue from any thread, leaving the process's SIGINT handler alone.

    dask-jobqueue 0.9 calls ``signal.signal(SIGINT, lambda *_: sys.exit())`` when it is
    imported (``dask_jobqueue/runner.py``, for its batch runners). Off the main thread that
    call raises ``ValueError: signal only works in main thread`` (the engine connects to its
    cluster from a worker thread); on the main thread it silently turns a kernel interrupt
    into ``SystemExit``. So during the import, ``signal.signal`` called from this thread only
    reports the current handler, and the handler is checked to be the one from before.

    Raises
    ------
    ImportError
        dask-jobqueue is not installed (the message says how to install it).
    """
    if "dask_jobqueue.local" in sys.modules:
        return sys.modules["dask_jobqueue"]
    with _import_lock:
        real = signal.signal
        me = threading.get_ident()
        main = threading.current_thread() is threading.main_thread()
        before = signal.getsignal(signal.SIGINT)

        def keep(signum: int, handler: Any) -> Any:
            # Other threads keep the real function: only our import is made harmless.
            if threading.get_ident() != me:
                return real(signum, handler)
            return signal.getsignal(signum)

        signal.signal = keep  # type: ignore[assignment]
        try:
            import dask_jobqueue
            import dask_jobqueue.local  # the "local" kind's class lives there
        except ImportError as exc:
            raise ImportError(_HINT) from exc
        finally:
            signal.signal = real
            if main and before is not None and signal.getsignal(signal.SIGINT) is not before:
                # Imported some other way meanwhile (a module-level signal call we did not
                # see): put back the handler the process had.
                signal.signal(signal.SIGINT, before)
    # A typed name: without the hpc extra installed, mypy sees the module as Any.
    module: ModuleType = dask_jobqueue
    return module


def make_cluster(kind: str, **cluster_options: Any) -> Any:
    """Start a dask-jobqueue cluster of ``kind``; no batch job is submitted yet.

    Parameters
    ----------
    kind
        "slurm", "pbs", "sge", "lsf" (or "local": dask-jobqueue's test cluster).
    **cluster_options
        Options of the dask-jobqueue class, per worker job: ``cores``, ``memory`` (both
        required unless set in dask's ``jobqueue`` config), ``queue``, ``account``,
        ``walltime``, ``processes``, ``job_extra_directives``, ``job_script_prologue``,
        ``interface``, ``scheduler_options``, ... (see dask-jobqueue's documentation).

    Returns
    -------
    dask_jobqueue.JobQueueCluster
        Close it with ``cluster.close()`` (an engine closes the clusters it made at shutdown).

    Raises
    ------
    ValueError
        Unknown kind, or options dask-jobqueue refuses (e.g. no ``cores``/``memory``); the
        message names the kind.

    Examples
    --------
    >>> from jupyter_executor._hpc import make_cluster
    >>> cluster = make_cluster("slurm", cores=2, memory="4GB", walltime="01:00:00",
    ...                        scheduler_options={"host": "127.0.0.1"})
    >>> "#SBATCH --cpus-per-task=2" in cluster.job_script()
    True
    >>> cluster.close()
    """
    cls = cluster_class(kind)
    try:
        return cls(**cluster_options)
    except ValueError as exc:
        msg = f"cannot make a {kind} cluster with {_show(cluster_options)}: {exc}"
        raise ValueError(msg) from exc
    except TypeError as exc:
        msg = f"bad option for a {kind} cluster ({_show(cluster_options)}): {exc}"
        raise TypeError(msg) from exc


def job_script(kind: str, **cluster_options: Any) -> str:
    """The batch script one worker job of such a cluster would submit (nothing is submitted).

    Examples
    --------
    >>> from jupyter_executor._hpc import job_script
    >>> script = job_script("pbs", cores=4, memory="8GB", queue="short",
    ...                     scheduler_options={"host": "127.0.0.1"})
    >>> "#PBS -q short" in script
    True
    """
    cluster = make_cluster(kind, **cluster_options)
    try:
        text: str = cluster.job_script()
    finally:
        cluster.close()
    return text


def scale(
    cluster: Any,
    n: int | None = None,
    *,
    jobs: int | None = None,
    cores: int | None = None,
    memory: str | None = None,
) -> None:
    """Ask for ``n`` workers (or ``jobs`` batch jobs, or enough for ``cores``/``memory``).

    Exactly one of them must be given; submitting happens in the background.
    """
    pairs = (("n", n), ("jobs", jobs), ("cores", cores), ("memory", memory))
    chosen: dict[str, Any] = {k: v for k, v in pairs if v is not None}
    if len(chosen) != 1:
        msg = f"scale() takes exactly one of n=, jobs=, cores=, memory=, not {chosen or 'none'}"
        raise ValueError(msg)
    for key in ("n", "jobs", "cores"):
        value = chosen.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            msg = f"scale({key}=...) takes a whole number >= 0, not {value!r}"
            raise ValueError(msg)
    cluster.scale(**chosen)


def adapt(cluster: Any, minimum: int = 0, maximum: int = 1, **options: Any) -> Any:
    """Let the cluster add and remove worker jobs with the load, between the bounds.

    Extra options go to ``cluster.adapt`` (``interval``, ``wait_count``, ``minimum_jobs``,
    ``maximum_jobs``, ...). Returns dask's ``Adaptive`` object.
    """
    if minimum < 0 or maximum < minimum:
        msg = f"adapt() needs 0 <= minimum <= maximum, not minimum={minimum}, maximum={maximum}"
        raise ValueError(msg)
    return cluster.adapt(minimum=minimum, maximum=maximum, **options)


def _show(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items()) or "no options"
