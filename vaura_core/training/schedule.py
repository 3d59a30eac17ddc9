"""Step budgets that fit a wall-clock allowance, and the learning-rate schedule over them.

Training for "M minutes" is made reproducible by turning the minutes into a step count: the first
`probe_steps` are timed, the total is set from that rate and re-estimated every `reestimate_every`
steps (the machine may be shared). Every run records the step count it ended with; passing that count
back as a fixed `steps` reproduces the run exactly, whatever the machine's speed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


def set_lr(optimizer: Any, lr: float) -> None:
    """Give every parameter group of a torch optimizer the learning rate `lr`."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def cosine_lr(step: int, total: int, peak: float, warmup: int, floor: float = 0.05) -> float:
    """Linear warm-up to `peak`, then cosine decay to `floor * peak` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class StepBudget:
    """How many steps to run: fixed (`steps`), or as many as fit in `seconds`."""

    seconds: float | None = None
    steps: int | None = None
    min_steps: int = 1
    max_steps: int = 1_000_000
    probe_steps: int = 5
    reestimate_every: int = 25
    total: int = field(init=False)
    _t0: float = field(init=False, default=0.0)
    _done_at_t0: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.steps is None and self.seconds is None:
            raise ValueError("a step budget needs steps or seconds")
        if self.steps is not None:
            self.total = max(1, int(self.steps))
        else:
            # Until the rate is known, assume the probe steps are all there is.
            self.total = max(self.min_steps, self.probe_steps)

    @property
    def fixed(self) -> bool:
        return self.steps is not None

    def start(self, done: int = 0) -> None:
        self._t0 = time.perf_counter()
        self._done_at_t0 = done

    def update(self, done: int) -> int:
        """Call after each step with the number of steps done; returns the (re-)estimated total."""
        if self.fixed or self.seconds is None:
            return self.total
        ran = done - self._done_at_t0
        if ran >= self.probe_steps and (ran == self.probe_steps or ran % self.reestimate_every == 0):
            elapsed = time.perf_counter() - self._t0
            per_step = elapsed / ran
            left = max(0.0, self.seconds - elapsed)
            self.total = int(min(self.max_steps, max(self.min_steps, done + left / per_step)))
            self.total = max(self.total, done)
        return self.total

    def finished(self, done: int) -> bool:
        if done >= self.total:
            return True
        if self.fixed or self.seconds is None:
            return False
        # A hard stop in case the machine slowed down a lot since the last estimate.
        return done >= self.min_steps and time.perf_counter() - self._t0 > self.seconds * 1.1
