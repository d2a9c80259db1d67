"""The kernel side of a dask task's live output: notes of skipped text start a line."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

pytest.importorskip("distributed")

from jupyter_executor.backends.dask import _Stream


def _stream() -> tuple[_Stream, io.StringIO]:
    out = io.StringIO()
    # _Stream writes to job.output and reads nothing else of the job.
    return _Stream(SimpleNamespace(output=out)), out  # type: ignore[arg-type]


def test_a_skip_after_a_batch_that_ended_inside_a_line_starts_its_own_line() -> None:
    # print() writes a line's text and its newline apart: a batch can end between them.
    stream, out = _stream()
    stream.live(0, "line 1\nline 2")
    stream.live(1_000, "line 90\n")
    stream.end(("line 90\nline 91\n", 1_016))
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["line 1", "line 2"]
    assert re.fullmatch(r"\[[\d,]+ characters not shown\]", lines[2]), lines
    assert lines[3:] == ["line 90", "line 91"]


def test_the_end_notes_a_skip_on_its_own_line_too() -> None:
    stream, out = _stream()
    stream.live(0, "a\nb")
    stream.end(("y\nz\n", 1_000))
    assert out.getvalue() == "a\nb\n[993 characters not shown]\ny\nz\n"
