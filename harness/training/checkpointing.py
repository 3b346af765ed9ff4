"""When a run checkpoints, and the state it resumes from (files: harness.store.checkpoints)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.store.checkpoints import write_checkpoint


@dataclass
class Checkpointing:
    """Where and how often a run checkpoints, and the state it resumes from (harness.store.checkpoints).
    `curves` is the run's list of logged [name, value, step], saved with each checkpoint, and
    `fingerprints` the pretraining code and data it is made from (harness/store/staleness.py)."""
    folder: Path
    every_s: float                     # run.checkpoint_every_min * 60; 0: at every epoch's end
    is_main: bool                      # only the main process writes
    resume: dict | None = None
    curves: list = field(default_factory=list)
    fingerprints: dict | None = None
    last: float = field(default_factory=time.monotonic)

    def save(self, state: dict) -> str:
        self.last = time.monotonic()
        if not self.is_main:
            return ""
        extra = {"fingerprints": self.fingerprints} if self.fingerprints is not None else {}
        return str(write_checkpoint(self.folder, {**state, "curves": list(self.curves), **extra}))


def generator_state(gen: torch.Generator | None):
    return gen.get_state() if gen is not None else None
