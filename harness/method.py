"""What every method is to the runner: a small class with an online network, a loss, hooks.

The runner builds `Method(encoder, ...)`, prepares `method.online` with Accelerate (the EMA
target, if any, stays outside `prepare`), and per batch calls `training_step`, then after each
optimizer step `after_optimizer_step`. Methods register with `@METHODS.register("name")` in a
module of the `methods/` package; METHODS imports every module there on its first lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from byol_bench.errors import UserError
from byol_bench.registry import Registry, import_submodules

# Filled on first lookup by importing every module of the `methods` package.
METHODS = Registry("method", discover=lambda: import_submodules("byol_bench.methods"))


@dataclass
class StepContext:
    """Where training stands, and the cross-process tools a cross-image loss needs."""
    epoch: int
    step: int
    total_steps: int
    total_epochs: int
    rank: int = 0
    world_size: int = 1
    # Cross-process tools; under DDP each first meets the other processes at a check
    # (byol_bench.training.agreement), so a failure elsewhere raises here instead of hanging.
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda t: t      # all_gather, concatenated
    reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t  # all_reduce(SUM)
    labels: torch.Tensor | None = None  # only for monitoring in SSL methods, never for training
    seed: int = 0                       # the run seed (for tie-breaking draws shared by processes)

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


class Method:
    """Base class. Subclasses set `views`/`uses_labels`/`trains` and implement the loss.

    `options` holds the method's own settings with their defaults; a config overrides them with
    `method_options.<method>.<option>`, and unknown options are errors.
    """
    views: int = 2               # augmented views per image the loader produces
    uses_labels: bool = False    # True only for the supervised reference
    trains: bool = True          # False: evaluated as initialised (random-init)
    reference: bool = False      # a reference row, not an SSL method
    options: dict[str, Any] = {}
    # Config sections this method's result depends on (they enter the run's identity hash).
    config_sections: tuple[str, ...] = ("backbone", "pretrain", "augment")

    def __init__(self, encoder: nn.Module, cfg: dict, options: dict, num_classes: int, task: str):
        self.cfg = cfg
        self.opt = options
        self.num_classes = num_classes
        self.task = task
        self.online: nn.Module = encoder

    @property
    def encoder(self) -> nn.Module:
        """The network evaluation uses (the online encoder)."""
        return self.online

    def to(self, device: torch.device) -> "Method":
        self.online.to(device)
        return self

    def training_step(self, model: nn.Module, views: list[torch.Tensor], ctx: StepContext
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss for one batch and detached logs.

        `model` is `self.online` as Accelerate prepared it (the DDP wrapper under several
        processes). Run the forward through `model`, never through `self.online`: only the
        wrapper's forward registers the gradient all-reduce, so a forward through
        `self.online` trains each process on its own gradients without any error. Read the
        online network's submodules (heads, for shapes) from `self.online`, which is the same
        module inside the wrapper."""
        raise TypeError(f"{type(self).__name__} does not train")

    def after_optimizer_step(self, ctx: StepContext) -> None:
        """Hook after each optimizer step (BYOL: the EMA update of the target)."""

    def epoch_logs(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> dict[str, float]:
        """Per-epoch figures to log (e.g. how often TracIn's partner shares the label).

        `reduce_sum` sums a tensor over the processes, so the figures are the global batch's,
        whatever the process count; every process calls this at the same point."""
        return {}

    def network_states(self) -> dict[str, dict]:
        """Every network's state_dict, for checkpoints (BYOL adds its target)."""
        return {"online": self.online.state_dict()}

    def load_networks(self, states: dict[str, dict]) -> None:
        self.online.load_state_dict(states["online"])

    def running_state(self) -> dict:
        """Sums a method keeps within an epoch for `epoch_logs` (the `_sums` dict by convention),
        so a checkpoint taken inside an epoch resumes its figures exactly."""
        return dict(getattr(self, "_sums", {}))

    def load_running_state(self, state: dict) -> None:
        if hasattr(self, "_sums"):
            self._sums = dict(state)

    def convert_sync_batchnorm(self) -> None:
        """Global-batch BatchNorm statistics under DDP (CUDA only): every network whose
        BatchNorm sees the batch, so that online and target normalise alike."""
        self.online = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.online)

    @classmethod
    def configure(cls, run_config: dict) -> None:
        """Adjust the resolved run config in place before it is hashed (e.g. a BN-free variant
        sets `backbone.norm`), so the config on disk is the one that ran."""

    @classmethod
    def resolve_options(cls, name: str, given: dict | None) -> dict:
        given = dict(given or {})
        unknown = sorted(set(given) - set(cls.options))
        if unknown:
            valid = ", ".join(sorted(cls.options)) or "(none)"
            raise UserError(f"unknown option(s) {', '.join(unknown)} for method {name!r}; valid: {valid}")
        out = dict(cls.options)
        for key, value in given.items():
            default = cls.options[key]
            if default is not None and not isinstance(value, type(default)) and not (
                    isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
                raise UserError(f"method_options.{name}.{key} wants a {type(default).__name__}, got {value!r}")
            out[key] = type(default)(value) if isinstance(default, float) else value
        return out
