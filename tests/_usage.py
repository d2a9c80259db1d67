"""The one-line UsageError check of the magics' tests."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError


def usage_error(fn: Any, *args: Any) -> str:
    """The message of the UsageError raised by ``fn(*args)``; it must be one line."""
    with pytest.raises(UsageError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message, message
    return message
