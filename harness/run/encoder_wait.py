"""Wait for an encoder that another invocation is pretraining, instead of training it twice.

Two grids that differ only in evaluation (`--set eval.knn.k=5` next to the plain grid, say)
have different run hashes, so run claims do not keep them apart, but the same `pretrain_hash`:
the same encoder, and the same checkpoint folder. Started together, both would pretrain it, and
one's checkpoints would be removed under the other. So a run that is about to pretrain first
takes a *pretraining claim*, `claims/pretrain-<pretrain_hash>.json` (the same atomic create,
heartbeat and stale takeover as run claims, harness/store/claims.py). If a live process holds it,
the run waits, polling every WAIT_POLL_S, until

- the encoder appears in the store: the run evaluates it and trains nothing (`pretrained_by`
  in its info.json names the run that trained it), or
- the claim is released or goes stale (its holder stopped, was preempted, or died: its claim
  stayed unchanged for `stale_after_s` while this run polled it, or its process on this host is
  gone): the run takes it and pretrains, resuming from the holder's newest checkpoint if there is one
  (checkpoints are kept per pretraining identity), or
- a preemption signal arrives: the run stops before starting (returned, so that under DDP
  every process learns it from the main process's decision).

The holder keeps its pretraining claim until its run ends; waiters look for the encoder first,
so they go on as soon as it is saved, while the holder still evaluates.
"""
from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

from byol_bench.config import CLAIM_HEARTBEAT_S
from byol_bench.training import preemption
from byol_bench.store.claims import CLAIMS, Claim, read_claim, try_claim
from byol_bench.store.encoders import encoder_path

PREFIX = "pretrain-"
WAIT_POLL_S = 5.0


def wait_for_pretraining(results_dir: Path, pretrain_hash: str, stale_after_s: float,
                         poll_s: float | None = None, heartbeat_s: float = CLAIM_HEARTBEAT_S
                         ) -> tuple[str, Claim | None, int | None]:
    """(action, pretraining claim, signal): ("evaluate", None, None) once the encoder is saved;
    ("pretrain", claim, None) when this process may train it; ("pretrain", None, signum) when
    a preemption signal came while waiting."""
    poll_s = WAIT_POLL_S if poll_s is None else poll_s
    saved = encoder_path(results_dir, pretrain_hash)
    told = False
    while True:
        if saved.exists():
            return "evaluate", None, None
        claim = try_claim(results_dir, PREFIX + pretrain_hash, stale_after_s, heartbeat_s)
        if claim is not None:
            if saved.exists():  # saved between the look and the claim
                claim.release()
                return "evaluate", None, None
            return "pretrain", claim, None
        signum = preemption.requested()
        if signum is not None:
            return "pretrain", None, signum
        if not told:
            holder = read_claim(Path(results_dir) / CLAIMS / f"{PREFIX}{pretrain_hash}.json") or {}
            job = f", SLURM job {holder['job']}" if holder.get("job") else ""
            tqdm.write(f"waiting for encoder {pretrain_hash}: pretrained by another invocation "
                       f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}{job})")
            told = True
        time.sleep(poll_s)
