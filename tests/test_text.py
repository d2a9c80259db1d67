"""Odd text: lone surrogates (non-UTF-8 file names) and huge lines never break history or views."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_executor import Engine
from jupyter_executor._text import safe_json, safe_text

#: What Python makes of a file name that is not UTF-8 (surrogateescape): ``"data-\udcff.csv"``.
ODD = os.fsdecode(b"data-\xff.csv")


def cannot_parse() -> None:
    raise ValueError(f"cannot parse {ODD}")


def prints_odd() -> str:
    print(f"reading {ODD}")
    return ODD


def test_safe_text_escapes_lone_surrogates_only() -> None:
    assert ODD == "data-\udcff.csv"
    assert safe_text(ODD) == "data-\\xff.csv"
    assert safe_text("\ud800 x") == "\\ud800 x"  # not an escaped byte: its code point
    text = "café ✓"
    assert safe_text(text) is text
    assert safe_json({ODD: [ODD, (1, None)]}) == {"data-\\xff.csv": ["data-\\xff.csv", [1, None]]}


def test_a_surrogate_in_an_error_does_not_block_the_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Engine(folder=tmp_path / "runs") as engine:
        engine.submit(cannot_parse, name="bad")
        assert not engine.wait(timeout=30)
        history = engine.history()  # raised StoreError: ... surrogates not allowed
        assert list(history["name"]) == ["bad"]
        assert history["error"][0] == "ValueError: cannot parse data-\\xff.csv"
        assert "data-\\xff.csv" in history["traceback"][0]
        # Later runs of other jobs are written too (the bad row was retried in every batch).
        later = engine.submit(sum, [1, 2], name="later")
        odd = engine.submit(prints_odd, name=f"odd-{ODD}")
        engine.wait(timeout=30)
        assert (later.status.value, odd.status.value) == ("done", "done")
        history = engine.history()
        assert list(history["name"]) == ["bad", "later", "odd-data-\\xff.csv"]
        assert list(history["status"]) == ["failed", "done", "done"]
        assert history["result"][2] == repr(ODD)  # a repr escapes surrogates itself
        assert len(engine.history(f"odd-{ODD}")) == 1
    assert "could not be written" not in caplog.text
