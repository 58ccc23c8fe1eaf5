"""The main job's step interface: each step has a name, says whether it is up to date, and
runs; ``StepTimer`` adds up the seconds each step took."""

from __future__ import annotations
import time
from dataclasses import dataclass, field



@dataclass
class StepTimer:
    seconds: dict = field(default_factory=dict)

    def run(self, name, fn, *a, **kw):
        t0 = time.time()
        try:
            return fn(*a, **kw)
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.time() - t0, 2)
