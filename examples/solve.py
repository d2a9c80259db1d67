"""A stand-in for a long computation: ``python solve.py I`` reads data_I.txt, writes test_I.txt."""

from __future__ import annotations

import sys
import time
from pathlib import Path

i = int(sys.argv[1])
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
here = Path(__file__).parent
numbers = [int(word) for word in (here / f"data_{i}.txt").read_text().split()]
print(f"solving {i}: {len(numbers)} numbers", flush=True)
time.sleep(delay)
(here / f"test_{i}.txt").write_text(f"{sum(numbers)}\n")
print(f"solved {i}: {sum(numbers)}", flush=True)
