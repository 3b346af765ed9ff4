"""Where a training step's time goes: online forward, target forward, loss, backward, optimizer,
EMA, other. `PhaseClock.mark(phase)` gives the time since the previous mark to `phase`, so the
phases of one step add up to the step exactly (on CUDA each mark synchronizes first, which
serialises the step a little: compare phases, take step totals from the unmarked timing).

`instrument(...)` marks our own `train_step` from outside, without changing it: forward hooks on
the online model and the target, and wrappers around the accelerator's backward, the optimizer's
step and zero_grad, and the method's post-step hook (BYOL's EMA). benchmarks.peers marks lightly's
step by hand with the same clock and phase names.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch

PHASES = ("online forward", "target forward", "loss", "backward", "optimizer", "EMA", "other")


class PhaseClock:
    """Seconds per phase of the current step; `start()` begins a step, `stop()` ends it."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.seconds: dict[str, float] = {}
        self._last = 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._last = self._now()

    def mark(self, phase: str) -> None:
        now = self._now()
        self.seconds[phase] += now - self._last
        self._last = now

    def stop(self) -> dict[str, float]:
        self.mark("other")
        return dict(self.seconds)


def _around(obj, name: str, clock: PhaseClock, before: str, after: str, undo: list) -> None:
    """Wrap the instance attribute `obj.name`: mark `before` on entry, `after` on exit."""
    inner = getattr(obj, name)

    def wrapped(*args, **kwargs):
        clock.mark(before)
        out = inner(*args, **kwargs)
        clock.mark(after)
        return out
    had = name in vars(obj)
    setattr(obj, name, wrapped)
    undo.append(lambda: setattr(obj, name, inner) if had else delattr(obj, name))


@contextmanager
def instrument(clock: PhaseClock, model: torch.nn.Module, target: torch.nn.Module | None,
               accelerator, optimizer, method):
    """Marks on our train_step's phases while inside; everything restored on exit. What lies
    between the marks (the views' concatenation, lr setting, agreement check) is "other",
    except the time from the last forward to the backward, which is the loss."""
    undo: list = []
    handles = [model.register_forward_pre_hook(lambda *_: clock.mark("other")),
               model.register_forward_hook(lambda *_: clock.mark("online forward"))]
    if target is not None:
        handles += [target.register_forward_pre_hook(lambda *_: clock.mark("other")),
                    target.register_forward_hook(lambda *_: clock.mark("target forward"))]
    try:
        _around(accelerator, "backward", clock, "loss", "backward", undo)
        _around(optimizer, "step", clock, "other", "optimizer", undo)
        _around(optimizer, "zero_grad", clock, "other", "optimizer", undo)
        _around(method, "after_optimizer_step", clock, "other", "EMA", undo)
        yield clock
    finally:
        for h in handles:
            h.remove()
        for restore in reversed(undo):
            restore()


def medians_ms(steps: list[dict[str, float]]) -> dict[str, float]:
    """Median over steps of each phase, in ms, and of the whole step ("total"; not the sum of
    the medians)."""
    out = {p: round(1e3 * statistics.median(s[p] for s in steps), 2) for p in PHASES}
    out["total"] = round(1e3 * statistics.median(sum(s.values()) for s in steps), 2)
    return out
