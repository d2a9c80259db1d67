"""The on-disk history of every run, and the durable schedules (``FOLDER/history.db``).

The package's rooms::

    _history.py   HistoryStore: the facade the engine, the CLI and _durable.py use; readers
    _direct.py    the writes done at once, in the caller's thread (schedules, record_exit, ...)
    _writer.py    the writer thread: a queue, batches, flush and close
    _fold.py      folding job snapshots into runs (pure: no SQLite, no threads)
    _query.py     the query of history() with its filters checked; decoding its rows
    _schema.py    the layout, its migrations (PRAGMA user_version), connections, transactions
"""

from __future__ import annotations

from ..errors import StoreError
from ._history import HistoryStore
from ._schema import COLUMNS, SCHEMA_VERSION

__all__ = ["COLUMNS", "SCHEMA_VERSION", "HistoryStore", "StoreError"]
