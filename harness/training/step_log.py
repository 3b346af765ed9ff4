"""Step-level figures for a tracker, every `every` optimizer steps, with one host sync each.

Each step adds its loss, the method's terms and the gradient norm to running sums that stay on
the device (no `.item()`, nothing waits for the GPU). At a step that is a multiple of `every`
the sums are stacked, averaged over the processes (one reduction), read with one `.tolist()`,
and logged as the interval's means with the host-side figures: the LR and the method's schedule
figures (BYOL's tau) of the last step, and the images per second since the last log, timed on
the host after that sync (so it is the throughput the device achieved).
"""
from __future__ import annotations

import time
from typing import Callable

import torch


def total_grad_norm(parameters) -> torch.Tensor:
    """The L2 norm of all gradients together, as a device tensor (no sync). torch >= 2.6 has
    get_total_norm (foreach kernels); before it, the norm of the per-tensor norms."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class StepLog:
    """Running sums of one logging interval; `log(values, step)` is the tracker's."""

    def __init__(self, every: int, log: Callable[[dict, int], None],
                 reduce_mean: Callable[[torch.Tensor], torch.Tensor] = lambda t: t):
        self.every = every
        self.log = log
        self.reduce_mean = reduce_mean
        self.last_step = -1  # a step the fp16 scaler skipped leaves the step count as it was
        self._reset()

    def _reset(self) -> None:
        self.steps = 0
        self.images = 0
        self.loss: torch.Tensor | float = 0.0
        self.grad_norm: torch.Tensor | float = 0.0
        self.terms: dict[str, torch.Tensor | float] = {}
        self.since = time.perf_counter()

    def add(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], grad_norm: torch.Tensor | None,
            images: int) -> None:
        """One step's figures, added on the device (`images`: the global batch)."""
        self.steps += 1
        self.images += images
        self.loss = self.loss + loss.float()
        if grad_norm is not None:
            self.grad_norm = self.grad_norm + grad_norm.float()
        for k, v in terms.items():
            self.terms[k] = self.terms.get(k, 0.0) + v.float()

    def due(self, step: int) -> bool:
        return self.steps > 0 and step % self.every == 0 and step != self.last_step

    def flush(self, step: int, host_figures: dict[str, float]) -> None:
        """Log the interval's means at optimizer step `step`: the one host sync of the interval."""
        names = sorted(self.terms)
        device_sums = [torch.as_tensor(x, dtype=torch.float32) if not isinstance(x, torch.Tensor) else x
                       for x in (self.loss, self.grad_norm, *(self.terms[k] for k in names))]
        device = next((x.device for x in device_sums if x.device.type != "cpu"), device_sums[0].device)
        means = self.reduce_mean(torch.stack([x.to(device) for x in device_sums]) / self.steps).tolist()
        seconds = time.perf_counter() - self.since
        values = {"step/loss": means[0], "step/grad_norm": means[1],
                  **{f"step/{k}": v for k, v in zip(names, means[2:])},
                  **{f"step/{k}": v for k, v in host_figures.items()},
                  "step/img_per_s": self.images / seconds if seconds > 0 else 0.0}
        self.log(values, step)
        self.last_step = step
        self._reset()
