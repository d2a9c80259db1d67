"""The type of the ``clocked`` fixture (conftest.py): an engine and the mock clock it runs on."""

from __future__ import annotations

from jupyter_executor import Engine
from jupyter_executor.testing import MockClock

Clocked = tuple[Engine, MockClock]
