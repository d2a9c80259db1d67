"""Text that can always be encoded: one rule for what reaches SQLite, a log file, JSON or a widget.

Python decodes a non-UTF-8 file name (``os.fsdecode(b"data-\\xff.csv")``), an environment variable
or a command line with ``surrogateescape``: the undecodable byte ``0xff`` becomes the lone
surrogate ``"\\udcff"``. Such a string prints and formats like any other, but encoding it as
UTF-8 raises ``UnicodeEncodeError: ... surrogates not allowed`` — in SQLite, in ``json`` +
``.encode()``, in a log file opened strictly.

The rule, applied wherever text leaves Python: an escaped byte is written as Python writes it
in a bytes literal (``\\xff``), any other lone surrogate as its code point (``\\udc80`` style, for
``"\\ud800"``). So ``data-\\xff.csv`` reads like the file name, is the same in the history, the
log, the dashboard and the job view, and is plain valid UTF-8 everywhere. Valid text is never
changed, and it costs nothing: the rule is applied only when encoding fails.

The rule is registered as the codec error handler :data:`ERRORS`, so a file opened with
``errors=ERRORS`` applies it as it writes.
"""

from __future__ import annotations

import codecs
import reprlib
from typing import Any

__all__ = [
    "ERRORS",
    "env_text",
    "error_message",
    "error_text",
    "safe_json",
    "safe_text",
    "short_repr",
]

#: Name of the codec error handler that writes lone surrogates as ``\xNN`` / ``\uNNNN``.
ERRORS = "jupyter_executor.escape"


def _escape(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for char in exc.object[exc.start : exc.end]:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that surrogateescape could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code > 0xFFFF:
            out.append(f"\\U{code:08x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), exc.end


codecs.register_error(ERRORS, _escape)


def safe_text(text: str) -> str:
    """``text`` with lone surrogates written as escapes, so that it encodes as UTF-8.

    Parameters
    ----------
    text
        Any string; one that encodes already is returned as it is (the same object).

    Returns
    -------
    str
        Valid text: an undecodable byte ``0xff`` (``"\\udcff"``) becomes the four characters
        ``\\xff``.

    Examples
    --------
    >>> import os
    >>> print(safe_text(os.fsdecode(b"data-\\xff.csv")))
    data-\\xff.csv
    >>> safe_text("café") == "café"
    True
    """
    if text.isascii():  # O(1) in CPython: the string knows
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", ERRORS).decode("utf-8")
    return text


def safe_json(value: Any) -> Any:
    """``value`` with every string in it (keys too) made safe by :func:`safe_text`.

    Walks dicts, lists and tuples (tuples become lists, as JSON makes them); other values are
    returned as they are. Meant for the rare message whose encoding failed: the common case
    should not pay for the walk.
    """
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_json(k): safe_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_json(v) for v in value]
    return value


_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = 6
_short.maxdict = 4
# Types whose repr is short and cheap: repr() at a tenth of reprlib's cost.
_PLAIN = frozenset({int, float, bool, str, bytes, type(None)})


def short_repr(value: Any) -> str:
    """A repr of at most about 60 characters; never raises (a broken ``__repr__`` is named)."""
    try:
        if value is None or type(value) in _PLAIN:
            text = repr(value)
            if len(text) <= _short.maxlong:  # the shorter of reprlib's two limits
                return text
        return _short.repr(value)
    except Exception:  # a user object's __repr__ must not cost the row
        return f"<{type(value).__name__} object>"


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` of an exception; never raises.

    A job's exception is the user's object: its ``__str__`` may raise, and the engine formats
    it on the thread that ends the job (a worker thread, the loop, the history's writer), which
    must not die of it. Such a message is shown as :mod:`traceback` shows it.

    Examples
    --------
    >>> error_text(ValueError("bad value"))
    'ValueError: bad value'
    >>> class Odd(Exception):
    ...     def __str__(self):
    ...         raise RuntimeError
    >>> error_text(Odd())
    'Odd: <exception str() failed>'
    """
    return f"{type(exc).__name__}: {error_message(exc)}"


def error_message(exc: BaseException) -> str:
    """``str(exc)``; never raises (see :func:`error_text`)."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def env_text(text: object) -> str:
    """``text`` as a process can be given it in its environment: :func:`safe_text`, and a NUL
    byte written as ``\\x00`` (a job's name may hold both; an environment can hold neither).

    Examples
    --------
    >>> env_text("etl \\ud800\\x00 v2")
    'etl \\\\ud800\\\\x00 v2'
    """
    return safe_text(str(text)).replace("\x00", "\\x00")
