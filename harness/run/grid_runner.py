"""Run the grid: every run still to do, one after another, in one process group.

A completed run with the same run hash, made from today's code and data, is skipped
(byol_bench.plan.grid.done_in_store); a run held by another invocation (a claim in the store) is
left to it while that one is seen alive, and taken over once its claim has not changed for
run.stale_after_s (harness/store/claims.py); a run whose claim is taken over in turn stops at
its next check, INTERRUPTED; on SIGTERM / SIGUSR2 the run in progress checkpoints and
`Preempted` propagates, and the same command resumes it.
"""
from __future__ import annotations

import signal
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from byol_bench.config import CLAIM_HEARTBEAT_S
from byol_bench.data import LoadedDataset, load_dataset_shared
from byol_bench.errors import UserError
from byol_bench.evaluation.transfer import transfer_targets
from byol_bench.plan.grid import RunSpec, done_in_store, newest_completed
from byol_bench.run.encoder_wait import wait_for_pretraining
from byol_bench.run.execute import drop_stale_encoder
from byol_bench.run.sacred_adapter import sacred_run
from byol_bench.store.claims import try_claim, watch_claim
from byol_bench.store.records import StoreReader
from byol_bench.training import preemption
from byol_bench.training.agreement import Agreement
from byol_bench.training.preemption import Preempted


def completed_in_store(store: StoreReader, spec: RunSpec) -> bool:
    """Whether another invocation completed the run since the grid was expanded (the grid's rule).
    `store` reads only the runs that are new or not completed since its last look."""
    newest = newest_completed(store.load()).get(spec.config["run_hash"])
    return done_in_store(newest, spec.config, spec.rerun_outdated)[0]


def run_grid(specs: list[RunSpec], accelerator: Accelerator, results_dir: Path, data_root: Path,
             cache_dir: Path, wait_timeout_h: float = 48.0, checkpoint_every_min: float = 10.0,
             stale_after_s: float = 120.0, heartbeat_s: float = CLAIM_HEARTBEAT_S,
             store: StoreReader | None = None) -> dict[str, int]:
    """Run every spec not already done; returns counts by status. On SIGTERM / SIGUSR2 the run
    in progress checkpoints and `Preempted` propagates (the same command resumes it). `store`:
    what is asked before each run whether another invocation completed it (default: the whole
    store; a SLURM task passes a reader of its own run's folders)."""
    with preemption.handled():
        return _run_grid(specs, accelerator, results_dir, data_root, cache_dir, wait_timeout_h,
                         checkpoint_every_min, stale_after_s, heartbeat_s, store)


def _run_grid(specs, accelerator, results_dir, data_root, cache_dir, wait_timeout_h,
              checkpoint_every_min, stale_after_s, heartbeat_s, store) -> dict[str, int]:
    runs_dir = results_dir / "runs"
    store = store or StoreReader(runs_dir)
    agreement = Agreement(accelerator.num_processes, wait_timeout_h * 3600)
    # Every process must agree on what to run: the main process's view of the store decides.
    actions = [[s.action for s in specs]]
    if accelerator.num_processes > 1:
        broadcast_object_list(actions)
    for spec, action in zip(specs, actions[0]):
        spec.action, spec.done = action, action == "skip"
    todo = [s for s in specs if not s.done]
    counts = {"skipped": len(specs) - len(todo), "COMPLETED": 0, "FAILED": 0}
    datasets: dict[tuple[str, int], LoadedDataset] = {}

    def get(name: str, size: int, train_subsample: int = 0) -> LoadedDataset:
        if (name, size, train_subsample) not in datasets:
            data = load_dataset_shared(name, data_root, size, cache_dir, accelerator)  # mmap, one decode
            data = data.train_subset(train_subsample)
            empty = [split for split in ("train", "val", "test") if len(data.images[split]) == 0]
            if empty:
                raise UserError(f"dataset {name!r}: the {', '.join(empty)} split(s) are empty; every "
                                "benchmark needs train, val (for selection) and test images")
            datasets[(name, size, train_subsample)] = data
        return datasets[(name, size, train_subsample)]

    # Load (or decode into the cache) every dataset first, transfer targets included (at the
    # pretraining dataset's size): missing data fails before any run is written.
    for spec in todo:
        size, sub = spec.config["data"]["image_size"], spec.config["data"].get("train_subsample", 0)
        get(spec.dataset, size, sub)
        if "transfer" in spec.config["protocols"]:
            for target in transfer_targets(spec.dataset, spec.config["eval"]["transfer"]["pairs"]):
                get(target, size, sub)

    def attempt(spec: RunSpec, take) -> bool:
        """Run `spec` if the main process gets its claim from `take()`; False when another
        invocation holds it."""
        signum = preemption.requested()
        if agreement.check(signum is not None):  # a signal between runs: stop before the next
            raise Preempted(signum or signal.SIGTERM)
        # Another invocation on this store may hold the run: the main process asks for the
        # claim, and every process follows its answer.
        claim = take() if accelerator.is_main_process else None
        if claim is not None and completed_in_store(store, spec):
            claim.release()  # finished by another invocation since this grid was expanded
            claim = None
        # Its encoder may be in training elsewhere (same pretrain_hash, other evaluation): wait
        # for it rather than train it twice (harness/run/encoder_wait.py).
        pretraining, signum = None, None
        if claim is not None and spec.action == "pretrain":
            drop_stale_encoder(results_dir, spec.config)
            spec.action, pretraining, signum = wait_for_pretraining(results_dir, spec.config["pretrain_hash"],
                                                                    stale_after_s, heartbeat_s=heartbeat_s)
        decided = [claim is not None, spec.action, signum]
        if accelerator.num_processes > 1:  # on the gloo group: the main process may wait for hours
            torch.distributed.broadcast_object_list(decided, src=0, group=agreement.group)
        held, spec.action, signum = decided
        if signum is not None:
            if claim is not None:
                claim.release()
            raise Preempted(signum)
        if not held:
            return False
        claims = [c for c in (claim, pretraining) if c is not None]
        # Every check of the run also asks whether another invocation took a claim over.
        agreement.claim_lost = lambda confirm=False: any(c.lost(confirm) for c in claims)
        try:
            size, sub = spec.config["data"]["image_size"], spec.config["data"].get("train_subsample", 0)
            status = sacred_run(spec, get(spec.dataset, size, sub), accelerator, runs_dir,
                                load_other=lambda name, size=size, sub=sub: get(name, size, sub),
                                agreement=agreement, checkpoint_every_s=checkpoint_every_min * 60)
        finally:
            agreement.claim_lost = lambda confirm=False: False
            for held_claim in claims:
                held_claim.release()
        counts[status] = counts.get(status, 0) + 1
        return True

    bar = tqdm(todo, desc="grid", disable=not accelerator.is_main_process)
    elsewhere = []
    for spec in bar:
        bar.set_postfix_str(spec.label)
        if not attempt(spec, lambda spec=spec: try_claim(results_dir, spec.config["run_hash"], stale_after_s,
                                                          heartbeat_s)):
            elsewhere.append(spec)
    # A holder that died on another host shows only as a claim that stops changing: watch each run
    # held elsewhere until its holder shows a sign of life (it is left to it) or its claim has been
    # unchanged for stale_after_s since this process first saw it (taken over and run here).
    for spec in elsewhere:
        if not attempt(spec, lambda spec=spec: watch_claim(results_dir, spec.config["run_hash"], stale_after_s,
                                                            heartbeat_s, give_up=preemption.requested)):
            counts["claimed elsewhere"] = counts.get("claimed elsewhere", 0) + 1
    return counts
