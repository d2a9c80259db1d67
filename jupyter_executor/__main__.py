"""``python -m jupyter_executor ...``: the same as the ``jupyter-executor`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":  # not when imported by tools that walk the package
    raise SystemExit(main())
