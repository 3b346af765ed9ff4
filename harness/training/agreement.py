"""Every process agrees on a run's outcome: a failure anywhere fails the run everywhere, once.

Under DDP an exception on one process must not leave the others waiting in a collective it
will never join. So the run's processes meet at *checks*: at the start of every training step,
inside every cross-image gather, before every backward, at the end of every epoch, after
training and after evaluation. A check is one all_reduce of a "failed" flag on a separate gloo
group (CPU, a tiny tensor, no device sync: an exception is a host event). A process that
raised calls `report` instead, which matches the others' next check; then all of them
exchange their reasons once and raise together, and the grid goes on in step.

A check also stops the run on every process, with `ClaimLost`, when the main process's run
claim was taken over by another invocation (`claim_lost`, set by the grid runner for each run:
harness/store/claims.py); the run is then recorded INTERRUPTED and writes nothing more.

The same group is where the other processes wait while the main process evaluates: its
timeout is `run.wait_timeout_h` (long; evaluation of ChestX-ray14 on one GPU takes hours),
not the NCCL group's 10 minutes, and no NCCL collective is pending meanwhile. It also carries
each process's random streams to the main process when a checkpoint is written (`gather_to_main`).

What a check cannot cover: a process that fails *inside* a collective the harness does not own
(SyncBatchNorm's all_gather in the forward, DDP's gradient all-reduce in the backward; e.g. a
CUDA out-of-memory there) leaves the others blocked in that collective until the process-group
timeout ends the job. One process is the degenerate case: every check is a no-op.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

from byol_bench.training.preemption import ClaimLost


class PeerFailed(RuntimeError):
    """Raised on a healthy process when another reported a failure; the message has the reasons."""


class RunFailed(RuntimeError):
    """The run failed on at least one process; the message names each process and its reason."""


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Agreement:
    """Checks and failure reports over one gloo group of all the run's processes."""

    def __init__(self, num_processes: int, wait_timeout_s: float = 48 * 3600.0):
        self.num_processes = num_processes
        # Whether this process's claims on the run were taken over (`confirm`: read them now).
        self.claim_lost: Callable[[bool], bool] = lambda confirm=False: False
        self.group = None
        if num_processes > 1:
            self.group = dist.new_group(backend="gloo", timeout=timedelta(seconds=wait_timeout_s))

    def check(self, stop: bool = False, confirm_claim: bool = False) -> bool:
        """Meet the other processes; raise PeerFailed if any of them reported a failure, and
        ClaimLost (on every process) if the run's claim was taken over (`confirm_claim`: as
        the claim file says now, before anything is saved or recorded). Returns whether any
        process asked to stop (a preemption signal), so that all of them checkpoint at the same
        step."""
        lost = self.claim_lost(confirm_claim)
        if self.group is None:
            if lost:
                raise ClaimLost()
            return stop
        failed, stopping, lost = self._exchange(False, stop, lost)
        if failed:
            raise PeerFailed(self._reasons(None))
        if lost:
            raise ClaimLost()
        return stopping

    def report(self, exc: BaseException) -> str:
        """This process failed: tell the others (at their next check) and return every reason."""
        if self.group is None:
            return describe(exc)
        self._exchange(True, False, False)
        return self._reasons(describe(exc))

    def outcome(self, exc: BaseException) -> RunFailed:
        """The one RunFailed every process raises for `exc` (a PeerFailed is already agreed)."""
        reason = str(exc) if isinstance(exc, PeerFailed) else self.report(exc)
        return RunFailed(reason)

    def gather_to_main(self, obj: object) -> list | None:
        """`obj` of every process, in process order, on the main process; None on the others.
        Every process calls it at the same point (CPU tensors only: the group is gloo)."""
        if self.group is None:
            return [obj]
        gathered = [None] * self.num_processes if dist.get_rank() == 0 else None
        dist.gather_object(obj, gathered, dst=0, group=self.group)
        return gathered

    def _exchange(self, failed: bool, stop: bool, lost: bool) -> tuple[bool, bool, bool]:
        flags = torch.tensor([int(failed), int(stop), int(lost)], dtype=torch.int32)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.group)
        return bool(flags[0]), bool(flags[1]), bool(flags[2])

    def _reasons(self, mine: str | None) -> str:
        reasons: list[str | None] = [None] * self.num_processes
        dist.all_gather_object(reasons, mine, group=self.group)
        text = "; ".join(f"process {rank}: {r}" for rank, r in enumerate(reasons) if r)
        return text or "a process failed"
