"""scriptflow's README (seeds/002) on our API: a flow of commands with declared outputs, run by
name from the command line, recorded so that "which run made final.txt" has an answer, and
commands sent to a dask cluster (an HPC queue goes through dask-jobqueue: test_hpc.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_executor import CommandFailed, Engine, Job

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

SFLOW = """\
import sys

def combine_file():
    a = int(open("test_1.txt").read())
    b = int(open("test_2.txt").read())
    with open("final.txt", "w") as f:
        f.write(f"{a + b}\\n")

async def flow_sleepit(engine):
    t1 = engine.submit([sys.executable, "-c", "open('test_1.txt','w').write('5')"],
                       name="solve-1", outputs=["test_1.txt"])
    t2 = engine.submit([sys.executable, "-c", "open('test_2.txt','w').write('4')"],
                       name="solve-2", outputs=["test_2.txt"])
    await engine.gather(t1, t2)  # sf.bag(t1, t2)
    await engine.submit(combine_file, name="final", requires=[t1, t2],
                        inputs=["test_1.txt", "test_2.txt"], outputs=["final.txt"])
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["PYTHONPATH"] = str(ROOT)  # this checkout, whatever is installed
    return subprocess.run(
        [sys.executable, "-m", "jupyter_executor", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def test_run_by_flow_name_in_sflow_py_then_why(tmp_path: Path) -> None:
    (tmp_path / "sflow.py").write_text(SFLOW)
    # `scriptflow run sleepit`
    run = cli(tmp_path, "run", "sleepit", "--folder", "runs", "--plain")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "final.txt").read_text() == "9\n"
    # reporting: tracing how files were created, with input and output hashes
    why = cli(tmp_path, "why", "final.txt", "--folder", "runs")
    assert why.returncode == 0, why.stderr
    lines = why.stdout.splitlines()
    assert lines[0].startswith("final.txt was made by job 'final' (attempt 1")
    assert "(unchanged since)" in lines[1]
    assert any(line.split()[:2] == ["input", str(tmp_path / "test_1.txt")] for line in lines)
    (tmp_path / "final.txt").write_text("10\n")
    assert "(changed since)" in cli(tmp_path, "why", "final.txt", "--folder", "runs").stdout
    missing = cli(tmp_path, "why", "test_9.txt", "--folder", "runs")
    assert missing.returncode != 0 and "no recorded run made test_9.txt" in missing.stderr


def test_run_by_flow_name_finds_flows_py_first(tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns("__pycache__", "*.txt"))
    for data in EXAMPLES.glob("data_*.txt"):
        shutil.copy(data, work)
    (work / "sflow.py").write_text("raise SystemExit('not this one')\n")
    run = cli(work, "run", "sleepit", "--folder", "runs", "--plain")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sleepit: done in" in run.stdout
    nothing = cli(tmp_path, "run", "sleepit")
    assert nothing.returncode == 2 and "no flows.py or sflow.py here" in nothing.stderr


@pytest.fixture
def dask_engine(tmp_path: Path) -> Engine:
    pytest.importorskip("distributed")
    engine = Engine(
        folder=tmp_path / "runs",
        dask={"n_workers": 1, "threads_per_worker": 2, "processes": False,
              "resources": {"GPU": 1}},
    )  # fmt: skip
    yield engine
    engine.shutdown()


def test_commands_on_a_dask_cluster(dask_engine: Engine, tmp_path: Path) -> None:
    ok = dask_engine.submit(
        [sys.executable, "-c", "import os; print('on a worker', os.environ['X'])"],
        backend="dask", env={"X": "1"}, cwd=tmp_path, name="ok",
    )  # fmt: skip
    bad = dask_engine.submit("echo before failing; exit 3", backend="dask", name="bad")
    dask_engine.wait(60)
    assert ok.result() == 0 and ok.tail() == "on a worker 1"
    assert isinstance(bad.exception(), CommandFailed)
    assert bad.exception().returncode == 3  # type: ignore[union-attr]
    assert bad.tail() == "before failing"  # its output is kept


def test_resources_and_priority_reach_dask(dask_engine: Engine) -> None:
    gpu = dask_engine.submit(lambda: "gpu", backend="dask", resources={"GPU": 1}, priority=5)
    assert dask_engine.wait_job(gpu, 60) and gpu.result() == "gpu"
    # no worker offers a TPU: the scheduler keeps the task waiting for one
    tpu = dask_engine.submit(lambda: "tpu", backend="dask", resources={"TPU": 1}, priority=7)
    client = dask_engine._backends["dask"]._client  # type: ignore[attr-defined]

    from _wait import wait_until

    seen = wait_until(
        lambda: client.run_on_scheduler(_restrictions, str(tpu.name)), 30, "the TPU task"
    )
    ((restriction, priority, state),) = seen.values()
    assert restriction == {"TPU": 1} and priority == -7 and state == "no-worker"
    dask_engine.cancel(tpu)
    with pytest.raises(ValueError, match="backend='dask'"):
        Job(print, resources={"GPU": 1})


def _restrictions(prefix: str, dask_scheduler: object = None) -> dict[str, object]:
    """(on the scheduler) The resources, priority and state of the tasks named ``prefix-*``."""
    return {
        k: (t.resource_restrictions, t.priority[0], t.state)
        for k, t in dask_scheduler.tasks.items()  # type: ignore[attr-defined]
        if str(k).startswith(prefix)
    }
