"""A word when a job ends (issue 11): a ``%%job --notify`` view sends a browser notification
(Web Notification API) with the job's name, status and duration, and so does the ``%jobs``
dashboard for a notifying job that has no view (a job shown in both is told once), in JupyterLab
with Debian's Chromium driven by Playwright.

The test grants the permission (``context.grant_permissions``) and wraps ``window.Notification``
in an init script so that every notification the page sends is recorded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _browser import (
    ARTIFACTS,
    in_notebook,
    jupyter_lab,
    kernel_execute,
    needs_browser,
    notebook_folder,
    run_all_cells,
    wait_idle,
    watched,
)

pytestmark = needs_browser()

CELLS = [
    "%load_ext jupyter_executor\nimport threading\nrelease = threading.Event()",
    "%%job told --notify\nrelease.wait(120)\nprint('trained')\n'model'",
    "%%job silent\n21 * 2",
    # no job view: only the dashboard can tell of its end
    "from jupyter_executor import get_engine\n"
    "_ = get_engine().submit(release.wait, 120, name='backstage', notify=True)",
    "%jobs",
]
# Records what the page sends, then lets the real API do it.
RECORD = """(() => {
  const Real = window.Notification;
  window.__notes = [];
  if (typeof Real !== "function") return;
  function Recorded(title, options) {
    window.__notes.push({ title, body: options && options.body, tag: options && options.tag });
    return new Real(title, options);
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recorded;
})();"""


@pytest.mark.timeout(240)
def test_a_notify_job_says_when_it_ends(tmp_path: Path, browser: Any) -> None:
    root = notebook_folder(tmp_path, "notify.ipynb", CELLS)
    with jupyter_lab(tmp_path, root) as lab:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["notifications"], origin=lab.url)
        context.add_init_script(RECORD)
        page = context.new_page()
        page.set_default_timeout(90_000)
        shutdown = "from jupyter_executor import get_engine\nget_engine().shutdown()"
        # page errors were not checked here before
        with watched(page, lab, "notify-lab", shutdown=shutdown, close=context, page_errors=False):
            page.goto(lab.notebook_url("notify.ipynb"))
            page.wait_for_function(
                "() => Boolean(window.jupyterapp && window.jupyterapp.shell.currentWidget)"
            )
            page.wait_for_function(
                "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext"
                ".session?.kernel; return Boolean(k && k.status === 'idle'); }",
                polling=200,
            )
            run_all_cells(page)
            in_notebook(page, '.je-jobview[data-name="told"][data-status="running"]').wait_for()
            in_notebook(page, '.je-jobview[data-name="silent"][data-status="done"]').wait_for()
            in_notebook(page, '.je-row[data-name="backstage"][data-status="running"]').wait_for()
            in_notebook(page, '.je-row[data-name="silent"][data-status="done"]').wait_for()
            page.wait_for_timeout(500)  # time for a wrong notification to show
            assert page.evaluate("() => window.__notes") == []  # neither running nor silent
            assert page.evaluate("() => Notification.permission") == "granted"
            kernel_execute(page, "release.set()")
            in_notebook(page, '.je-jobview[data-name="told"][data-status="done"]').wait_for()
            in_notebook(page, '.je-row[data-name="backstage"][data-status="done"]').wait_for()
            page.wait_for_function("() => window.__notes.length > 1", polling=100)
            page.wait_for_timeout(500)  # a third one (the same end twice) would show by now
            notes = page.evaluate("() => window.__notes")
            page.screenshot(path=str(ARTIFACTS / "notify-lab-done.png"), full_page=True)
            assert len(notes) == 2, notes
            by_title = {note["title"]: note for note in notes}
            assert set(by_title) == {"Job told done", "Job backstage done"}, notes
            for note in notes:
                assert re.fullmatch(r"done in \d+\.\d\d s", note["body"]), note
            assert not page.title().startswith("(allow notifications?)")
            wait_idle(page)
