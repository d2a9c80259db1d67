"""JupyterLab and Jupyter Notebook 7 in headless Chromium, for the browser tests and the
dashboard benchmark.

Recipe (docs/kernel-notes.md §6):

- the server runs with every Jupyter directory (config, data, runtime, IPython) under a temp dir,
  a random port and token, the app exposed in the browser (``--LabApp.expose_app_in_browser``,
  ``--JupyterNotebookApp.expose_app_in_browser`` for Notebook 7: ``window.jupyterapp`` lets the
  test run cells) and the news notification switched off;
- Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright for Python (never
  ``playwright install``), with its profile and cache under the temp dir;
- everything started here is stopped in ``finally`` blocks: the server's whole process group
  (kernels included) is terminated, then killed after a grace period.

Besides JupyterLab, :func:`widget_page` loads a widget bundle into a blank page with a minimal
in-page model (what anywidget hands to ``initialize``/``render``), to time the front end alone.

Examples
--------
>>> with jupyter_lab(tmp_path, root) as lab, chromium(tmp_path) as browser:  # doctest: +SKIP
...     page = open_notebook(browser, lab, "dashboard.ipynb")
...     run_all_cells(page)
...     print(kernel_execute(page, "print(1 + 1)"))
2

:func:`jupyter_notebook` starts Notebook 7 instead; the page helpers work on both, since both
front ends are JupyterLab applications whose ``shell.currentWidget`` is the notebook panel.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: Screenshots of the browser tests.
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def browser_available() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return "Debian chromium is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed"
    if shutil.which("jupyter-lab") is None and not _has_module("jupyterlab"):
        return "jupyterlab is not installed"
    return None


def notebook7_available() -> str | None:
    """Why the Notebook 7 browser tests cannot run here, or None when they can."""
    reason = browser_available()
    if reason is not None:
        return reason
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("notebook")
    except PackageNotFoundError:
        return "notebook (Jupyter Notebook 7) is not installed"
    if int(installed.split(".")[0]) < 7:
        return f"notebook {installed} is installed; these tests need Notebook 7"
    return None


def needs_browser(*, notebook7: bool = False) -> list[Any]:
    """The marks of a browser test module: ``browser``, skipped where it cannot run (also
    without Notebook 7 when ``notebook7``)."""
    import pytest

    reason = notebook7_available() if notebook7 else browser_available()
    return [pytest.mark.browser, pytest.mark.skipif(reason is not None, reason=str(reason))]


@contextlib.contextmanager
def watched(
    page: Any,
    server: Lab,
    name: str,
    *,
    shutdown: str | None = None,
    close: Any = None,
    page_errors: bool = True,
) -> Iterator[None]:
    """Around a browser test's flow on ``page``: when it fails, a screenshot
    (``test-artifacts/NAME-failure.png``) and the end of the server's log; whatever happens,
    ``shutdown`` run in the kernel (stops its engines) and the page (or ``close``) closed. Then,
    with ``page_errors``, no error of ours may have been thrown in the page."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
        print(server.log_tail())
        raise
    finally:
        if shutdown is not None:
            try:
                kernel_execute(page, shutdown, timeout=30)
            except Exception as exc:  # the kernel may be gone after a failure
                print(f"shutdown in kernel: {exc}")
        (close if close is not None else page).close()
    ours = [e for e in errors if "jupyter_executor" in e or "je-" in e]
    assert not page_errors or not ours, ours


#: Stops the kernel's engine at the end of a browser test (its jobs would outlive the page).
ENGINE_SHUTDOWN = "from jupyter_executor import get_engine\nget_engine().shutdown()"


@contextlib.contextmanager
def notebook_page(
    browser: Any,
    tmp: Path,
    app: str,
    notebook: str,
    cells: Sequence[str],
    *,
    artifact: str,
    shutdown: str = ENGINE_SHUTDOWN,
) -> Iterator[Any]:
    """The page of a notebook of ``cells`` written to ``tmp``, served by JupyterLab
    (``app="lab"``) or Notebook 7 (``"notebook"``), opened and :func:`watched` (``artifact``
    names its failure screenshot) until the block ends."""
    root = notebook_folder(tmp, notebook, cells)
    serve = jupyter_lab if app == "lab" else jupyter_notebook
    with serve(tmp, root) as server:
        page = open_notebook(browser, server, notebook)
        with watched(page, server, artifact, shutdown=shutdown):
            yield page


def notebook_folder(tmp: Path, name: str, cells: Sequence[str]) -> Path:
    """A folder ``tmp/root`` holding the notebook ``name`` of code ``cells`` (the server's root),
    and the screenshots' folder made."""
    root = tmp / "root"
    root.mkdir()
    write_notebook(root / name, cells)
    ARTIFACTS.mkdir(exist_ok=True)
    return root


def write_notebook(path: Path, cells: Sequence[str]) -> None:
    """A notebook of code ``cells`` for the ``python3`` kernel, written to ``path``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    nbformat.write(nb, path)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running Jupyter server: JupyterLab (``app="lab"``) or Notebook 7 (``app="notebook"``)."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    app: str = "lab"

    def lab_url(self, notebook: str, workspace: str = "test") -> str:
        # ?reset: start from an empty workspace, not a restored tab.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={self.token}"

    def notebook_url(self, notebook: str) -> str:
        """The page that opens ``notebook`` in this server's front end."""
        if self.app == "notebook":
            # Notebook 7 opens one notebook per page and restores no workspace.
            return f"{self.url}/notebooks/{notebook}?token={self.token}"
        return self.lab_url(notebook)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@contextlib.contextmanager
def jupyter_lab(tmp: Path, root: Path, *, timeout: float = 60.0) -> Iterator[Lab]:
    """Start JupyterLab serving ``root``; stop it (and its kernels) on exit."""
    with _jupyter_server(tmp, root, "lab", timeout=timeout) as lab:
        yield lab


@contextlib.contextmanager
def jupyter_notebook(tmp: Path, root: Path, *, timeout: float = 60.0) -> Iterator[Lab]:
    """Start Jupyter Notebook 7 serving ``root``; stop it (and its kernels) on exit."""
    with _jupyter_server(tmp, root, "notebook", timeout=timeout) as server:
        yield server


# The command line of each front end: its module and its own app class's options.
_APPS = {
    "lab": ("jupyterlab", "LabApp", "JupyterLab"),
    "notebook": ("notebook", "JupyterNotebookApp", "Jupyter Notebook"),
}


@contextlib.contextmanager
def _jupyter_server(tmp: Path, root: Path, app: str, *, timeout: float) -> Iterator[Lab]:
    module, app_class, title = _APPS[app]
    home = tmp / "jupyter-home"
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / "ipython",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    settings = home / "lab-settings"
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True, exist_ok=True)
    (notif / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({k: str(v) for k, v in dirs.items()})
    # The kernel imports the working copy of the package (also when not pip-installed).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    port = _free_port()
    token = secrets.token_hex(16)
    log = tmp / f"jupyter-{app}.log"
    cmd = [
        sys.executable, "-m", module,
        "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--{app_class}.expose_app_in_browser=True",
        f"--{app_class}.user_settings_dir={settings}",
        "--ServerApp.open_browser=False",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Lab(f"http://127.0.0.1:{port}", token, root, proc, log, app)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                msg = f"{title} exited with {proc.returncode}:\n{server.log_tail()}"
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"{title} did not start in {timeout} s:\n{server.log_tail()}"
                    raise RuntimeError(msg) from None
                time.sleep(0.2)
        yield server
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # Kernels are in the server's process group too; make sure none survives.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@contextlib.contextmanager
def chromium(tmp: Path) -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    xdg = tmp / "chromium-xdg"
    for sub in ("config", "cache"):
        (xdg / sub).mkdir(parents=True, exist_ok=True)
    env: dict[str, str | float | bool] = {
        **os.environ,
        "XDG_CONFIG_HOME": str(xdg / "config"),
        "XDG_CACHE_HOME": str(xdg / "cache"),
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, env=env
        )
        try:
            yield browser
        finally:
            browser.close()


# -- driving a notebook (JupyterLab or Notebook 7) -------------------------------------------------

_KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return Boolean(k && k.status === 'idle' && k.connectionStatus === 'connected');
}"""


def open_notebook(browser: Any, lab: Lab, notebook: str, *, timeout: float = 90.0) -> Any:
    """Open a notebook in a new page and wait until its kernel is idle."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(timeout * 1000)
    page.goto(lab.notebook_url(notebook))
    page.wait_for_function(
        "() => Boolean(window.jupyterapp && window.jupyterapp.shell.currentWidget)"
    )
    page.wait_for_function(_KERNEL_IDLE, polling=200)
    return page


def run_all_cells(page: Any, *, timeout: float = 120.0) -> None:
    """Run every cell of the current notebook and wait for the kernel to be idle again."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait_idle(page, timeout=timeout)


# No code cell is running or queued: the front end sets a cell's executionState to "running" when
# it queues the cell (synchronously, in the command) and back to "idle" at its reply. An idle
# kernel alone is not enough: it is idle before it has received a queued request, and between
# two cells of a run-all. (Not the execution count: clearing a cell's output resets it.)
_CELLS_DONE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.widgets) return false;
  return w.content.widgets.every(
    (c) => c.model.type !== 'code' || c.model.executionState !== 'running');
}"""


def wait_idle(page: Any, *, timeout: float = 120.0) -> None:
    """Wait until every code cell of the current notebook has run and the kernel is idle."""
    page.wait_for_function(
        f"() => ({_CELLS_DONE})() && ({_KERNEL_IDLE})()", polling=200, timeout=timeout * 1000
    )


def kernel_execute(page: Any, code: str, *, timeout: float = 60.0) -> str:
    """Run ``code`` in the notebook's kernel (no cell is added) and return its stdout.

    Raises
    ------
    AssertionError
        When the code raises in the kernel.
    """
    result = page.evaluate(
        """async ([code, timeoutMs]) => {
          const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
          const future = kernel.requestExecute({ code, silent: false, store_history: false });
          let out = ""; let err = null;
          future.onIOPub = (msg) => {
            const t = msg.header.msg_type;
            if (t === "stream") out += msg.content.text;
            if (t === "error") err = msg.content.ename + ": " + msg.content.evalue;
          };
          const timer = new Promise(
            (_, rej) => setTimeout(() => rej(new Error("timeout")), timeoutMs));
          await Promise.race([future.done, timer]);
          return { out, err };
        }""",
        [code, int(timeout * 1000)],
    )
    if result["err"]:
        msg = f"kernel raised {result['err']} running:\n{code}"
        raise AssertionError(msg)
    return str(result["out"])


def notebook_node(page: Any) -> Any:
    """The DOM node of the current notebook panel (scope for queries)."""
    return page.evaluate_handle("() => window.jupyterapp.shell.currentWidget.node")


def in_notebook(page: Any, selector: str) -> Any:
    """A locator for ``selector`` scoped to the current notebook panel."""
    panel_id = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    return page.locator(f"#{panel_id} {selector}")


def wait_status(page: Any, name: str, status: str, timeout: float = 120.0) -> None:
    """Wait until the dashboard of the current notebook shows job ``name`` with ``status``."""
    in_notebook(page, f'.je-row[data-name="{name}"][data-status="{status}"]').wait_for(
        timeout=timeout * 1000
    )


def add_and_run_cell(page: Any, code: str, *, timeout: float = 120.0) -> float:
    """Append a code cell with ``code`` and run it; return the page time (ms) it started.

    Does not wait: call :func:`wait_idle` after.
    """
    return float(
        page.evaluate(
            """async (code) => {
              const app = window.jupyterapp;
              const panel = app.shell.currentWidget;
              const nb = panel.content;
              nb.activeCellIndex = nb.widgets.length - 1;
              await app.commands.execute('notebook:insert-cell-below');
              nb.activeCell.model.sharedModel.setSource(code);
              const t0 = performance.now();
              app.commands.execute('notebook:run-cell');
              return t0;
            }""",
            code,
        )
    )


# -- a widget bundle alone, with an in-page model -------------------------------------------------

_FAKE_MODEL = """async ({ esm, css, state }) => {
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const mod = await import(url);
  const handlers = new Set();
  const sent = [];
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; },
    save_changes: () => {},
    send: (m) => sent.push(m),
    on: (name, cb) => { if (name === "msg:custom") handlers.add(cb); },
    off: (name, cb) => { handlers.delete(cb); },
  };
  window.__je = { model, sent, emit: (msg) => { for (const cb of handlers) cb(msg, []); } };
  mod.default.initialize({ model });
  const el = document.createElement("div");
  document.body.append(el);
  const t0 = performance.now();
  mod.default.render({ model, el });
  const drawn = performance.now() - t0;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return { drawn, painted: performance.now() - t0 };
}"""


def widget_page(browser: Any, bundle: str, init: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """Render a bundle of ``jupyter_executor/static`` in a blank page with an in-page model.

    ``init`` is the widget's ``_init`` state (a snapshot message). Returns the page and the render
    timings in ms: ``drawn`` (render() returned, rows in the DOM) and ``painted`` (two frames
    later).
    ``window.__je.emit(msg)`` then delivers kernel messages; ``window.__je.sent`` holds what the
    widget sent back.
    """
    static = REPO / "jupyter_executor" / "static"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_content("<!doctype html><html><body></body></html>")
    state = {"_uid": secrets.token_hex(8), "_init": init}
    timings = page.evaluate(
        _FAKE_MODEL,
        {
            "esm": (static / f"{bundle}.js").read_text(encoding="utf-8"),
            "css": (static / f"{bundle}.css").read_text(encoding="utf-8"),
            "state": state,
        },
    )
    return page, timings
