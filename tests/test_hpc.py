"""HPC clusters through dask-jobqueue: job scripts for SLURM, PBS, SGE and LSF, and a real
dask worker started by a SLURM batch script.

No batch scheduler runs here. What is run for real: dask-jobqueue builds the clusters and their
job scripts; in the last tests, ``sbatch``/``scancel`` are stand-in shell scripts on PATH that
run the generated script as a local process group (as SLURM would on a node), so a dask worker
started by the SLURM job script connects back and runs an engine job (from a real kernel too: a
function, and a script as a command, its output live, through an interrupt). What is not run: a
real
SLURM/PBS/SGE/LSF queue, its accounting, and a remote node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _kernel import REPO, running_kernel

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is in the test extra")

from jupyter_executor import Engine
from jupyter_executor._hpc import (
    KINDS,
    adapt,
    cluster_class,
    job_script,
    make_cluster,
    scale,
)

# Loopback only: the scheduler and its workers never listen on another address.
LOCAL = {"interface": "lo", "scheduler_options": {"host": "127.0.0.1"}}


def test_slurm_job_script_carries_the_cluster_options() -> None:
    script = job_script(
        "slurm",
        cores=4,
        memory="8GB",
        processes=2,
        queue="short",
        account="proj42",
        walltime="02:00:00",
        job_extra_directives=["--gres=gpu:1"],
        job_script_prologue=["module load python"],
        **LOCAL,
    )
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in (
        "#SBATCH -p short",
        "#SBATCH -A proj42",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH -t 02:00:00",
        "#SBATCH --gres=gpu:1",
    ):
        assert directive in lines
    assert any(line.startswith("#SBATCH --mem=") for line in lines)
    assert "module load python" in lines
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert worker.startswith(sys.executable)  # the same Python as this process
    assert "tcp://127.0.0.1:" in worker and "--nworkers 2" in worker and "--nthreads 2" in worker


@pytest.mark.parametrize(
    ("kind", "marker"),
    [("pbs", "#PBS -q short"), ("sge", "#$ -q short"), ("lsf", "#BSUB -q short")],
)
def test_other_schedulers_job_scripts(kind: str, marker: str) -> None:
    script = job_script(kind, cores=2, memory="4GB", queue="short", **LOCAL)
    assert marker in script.splitlines()
    assert "distributed.cli.dask_worker" in script


def test_bad_kinds_and_options_are_clear_errors() -> None:
    assert set(KINDS) == {"slurm", "pbs", "sge", "lsf", "local"}
    assert cluster_class("SLURM").__name__ == "SLURMCluster"
    with pytest.raises(ValueError, match="unknown cluster kind 'condor'; use one of slurm, pbs"):
        make_cluster("condor")
    with pytest.raises(ValueError, match="cannot make a slurm cluster with queue='q'"):
        make_cluster("slurm", queue="q", **LOCAL)  # no cores/memory (and none in dask's config)


class _FakeCluster:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def scale(self, **kw: object) -> None:
        self.calls.append(("scale", kw))

    def adapt(self, **kw: object) -> str:
        self.calls.append(("adapt", kw))
        return "adaptive"


def test_scale_and_adapt_check_their_arguments() -> None:
    cluster = _FakeCluster()  # only the argument checks are ours; dask's scaling is dask's
    scale(cluster, 4)
    scale(cluster, jobs=2)
    scale(cluster, memory="64GB")
    assert adapt(cluster, minimum=1, maximum=10, wait_count=5) == "adaptive"
    assert cluster.calls == [
        ("scale", {"n": 4}),
        ("scale", {"jobs": 2}),
        ("scale", {"memory": "64GB"}),
        ("adapt", {"minimum": 1, "maximum": 10, "wait_count": 5}),
    ]
    with pytest.raises(ValueError, match="exactly one of"):
        scale(cluster, 1, jobs=1)
    with pytest.raises(ValueError, match="exactly one of"):
        scale(cluster)
    with pytest.raises(ValueError, match="whole number >= 0"):
        scale(cluster, -1)
    with pytest.raises(ValueError, match="0 <= minimum <= maximum"):
        adapt(cluster, minimum=3, maximum=1)


SBATCH = """#!/bin/bash
# Stand-in for SLURM's sbatch: run the job script as its own process group, like a node would.
set -e
n=$(ls "$FAKE_SLURM" | grep -c '^job' || true)
cp "$1" "$FAKE_SLURM/job$n.sh"
setsid bash "$FAKE_SLURM/job$n.sh" > "$FAKE_SLURM/job$n.log" 2>&1 < /dev/null &
echo $! >> "$FAKE_SLURM/pids"
echo "Submitted batch job $!"
"""

SCANCEL = """#!/bin/bash
for id in "$@"; do kill -TERM -- "-$id" 2>/dev/null || true; done
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """sbatch/scancel on PATH; every process group they started is killed afterwards."""
    folder = tmp_path / "slurm"
    folder.mkdir()
    for name, text in (("sbatch", SBATCH), ("scancel", SCANCEL)):
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(folder))
    try:
        yield folder
    finally:
        pids = (folder / "pids").read_text().split() if (folder / "pids").exists() else []
        for pid in map(int, pids):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


@pytest.mark.dask
@pytest.mark.timeout(90)
def test_engine_on_slurm_runs_a_job_on_a_worker_started_by_sbatch(
    fake_slurm: Path, tmp_path: Path
) -> None:
    options = {"cores": 1, "memory": "1GB", "processes": 1, "walltime": "00:05:00", **LOCAL}
    engine = Engine(dask="slurm", cluster_options=options, folder=tmp_path / "runs")
    try:
        cluster = engine.cluster  # started on first use, owned by the engine
        assert type(cluster).__name__ == "SLURMCluster"
        assert not (fake_slurm / "pids").exists()  # nothing submitted before scaling
        engine.scale(jobs=1)  # sbatch runs here
        job = engine.submit(os.getpid, name="where", backend="dask")
        assert engine.wait_job(job, timeout=60), job.info().error
        assert job.result() != os.getpid()  # it ran in the worker the batch script started
        submitted = (fake_slurm / "job0.sh").read_text()  # what sbatch was given
        assert "#SBATCH -t 00:05:00" in submitted and "distributed.cli.dask_worker" in submitted
        with pytest.raises(ValueError, match="exactly one of"):
            engine.scale()
    finally:
        engine.shutdown()  # closes the cluster, which calls scancel on its jobs
    pid = int((fake_slurm / "pids").read_text().split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the batch job's processes survived the engine's shutdown")


# As installed: nothing imported dask_jobqueue before the engine does, and the engine does it in
# a thread of its own (this module's importorskip imports it in pytest's main thread, which is
# how an earlier test passed while every user got "signal only works in main thread").
AS_INSTALLED = """
import signal, threading
from jupyter_executor import Engine

LOCAL = {"interface": "lo", "scheduler_options": {"host": "127.0.0.1"}}
box = {}

def build():
    box["engine"] = Engine(
        dask="slurm", cluster_options={"cores": 1, "memory": "1GB", **LOCAL}, history=False
    )

thread = threading.Thread(target=build)
thread.start()
thread.join()
engine = box["engine"]
try:
    cluster = engine.cluster  # connects from one of the engine's threads
    print("cluster", type(cluster).__name__)
    print("sigint default", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
finally:
    engine.shutdown()
"""


@pytest.mark.dask
@pytest.mark.timeout(90)
def test_a_fresh_process_gets_its_cluster_off_the_main_thread(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", AS_INSTALLED],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cluster SLURMCluster" in proc.stdout, proc.stderr[-3000:]
    assert "sigint default True" in proc.stdout


SOLVE = """import pathlib, sys, time
n = sys.argv[1]
print("solving", n, flush=True)
while not pathlib.Path("go").exists():  # until the test says so
    time.sleep(0.05)
pathlib.Path(f"out{n}.txt").write_text(n)
print("solved", n)
"""


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_a_kernel_keeps_its_interrupt_after_using_a_slurm_engine(
    fake_slurm: Path, tmp_path: Path
) -> None:
    with running_kernel(tmp_path / "k") as kernel:
        (kernel.cwd / "solve.py").write_text(SOLVE)
        kernel.execute("import signal\nbefore = signal.getsignal(signal.SIGINT)")
        code = textwrap.dedent(
            """
            import os
            from jupyter_executor import Engine
            engine = Engine(dask="slurm", folder="runs", cluster_options={
                "cores": 1, "memory": "1GB", "processes": 1, "walltime": "00:05:00",
                "interface": "lo", "scheduler_options": {"host": "127.0.0.1"}})
            engine.scale(jobs=1)
            job = engine.submit(os.getpid, name="where", backend="dask")
            ok = engine.wait_job(job, timeout=60)
            (ok, job.result() != os.getpid()) if ok else job.info().error
            """
        )
        assert kernel.execute(code, timeout=90).result == "(True, True)"
        assert kernel.eval("signal.getsignal(signal.SIGINT) is before") == "True"
        # scriptflow's use: a script sent to the queue as a command (it runs in a subprocess
        # of the worker that sbatch started, in the submission folder, as on SLURM).
        kernel.execute(
            "import shlex, sys\n"
            "solve = engine.submit(f'{shlex.quote(sys.executable)} solve.py 1', backend='dask',"
            " name='solve-1')"
        )
        # Its first line reaches the kernel while it runs.
        deadline = time.monotonic() + 60
        while kernel.eval("solve.tail()") != "'solving 1'" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert kernel.eval("(str(solve.status), solve.tail())") == "('running', 'solving 1')"
        # An interrupt stops the cell waiting for it with KeyboardInterrupt (dask-jobqueue's
        # own handler would have raised SystemExit), and the job runs on.
        cell = kernel.submit("engine.wait_job(solve, timeout=60)")
        kernel.wait_for(
            lambda: any(
                m["msg_type"] == "status" and m["content"]["execution_state"] == "busy"
                for m in cell.messages
            ),
            what="the waiting cell to start",
        )
        time.sleep(0.3)
        kernel.interrupt()
        cell.wait(20)
        assert cell.error is not None and cell.error["content"]["ename"] == "KeyboardInterrupt"
        assert kernel.eval("str(solve.status)") == "'running'"
        (kernel.cwd / "go").write_text("go")
        result = kernel.eval("(engine.wait_job(solve, timeout=60), solve.result(), solve.tail())")
        assert result == "(True, 0, 'solving 1\\nsolved 1')"
        assert (kernel.cwd / "out1.txt").read_text() == "1"
        kernel.execute("engine.shutdown()", timeout=60)
