"""Expand a config into the grid dataset x method x seed, each a fully resolved run config."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from byol_bench.config import seed_list
from byol_bench.data import DATASETS
from byol_bench.errors import UserError
from byol_bench.evaluation import PROTOCOLS
from byol_bench.evaluation.transfer import check_transfer_kinds, parse_pair
from byol_bench.method import METHODS
from byol_bench.plan.fingerprints import Fingerprints
from byol_bench.plan.plugins import use_plugins
from byol_bench.plan.run_config import run_config
from byol_bench.store.encoders import encoder_fingerprints, encoder_path
from byol_bench.store.records import RunRecord, latest_completed, load_runs
from byol_bench.store.staleness import not_reusable, outdated, pretraining_fingerprints, unknown

# How a run is watched (README, "Watch a run"): outside every identity, carried by each spec so a
# launcher's task watches its run as the grid's config says.
WATCH_KEYS = ("log_with", "log_every_steps", "monitor_every", "monitor_knn_every")


@dataclass
class RunSpec:
    dataset: str
    method: str
    seed: int
    config: dict            # resolved run config, including run_hash and pretrain_hash
    done: bool = False
    action: str = "pretrain"  # skip (completed) | evaluate (encoder saved) | pretrain
    note: str = ""            # e.g. "interrupted run 7 (no heartbeat for 300 s)"
    rerun_outdated: bool = False  # run.rerun_outdated: a shared-code change also makes it out of date
    watch: dict = field(default_factory=dict)  # the run section's WATCH_KEYS: how the run is watched

    @property
    def label(self) -> str:
        recipe = self.config.get("recipe")
        return f"{self.dataset}{f' [{recipe}]' if recipe else ''} / {self.method} / seed {self.seed}"


def resolve_selection(cfg: dict) -> tuple[list[str], list[str], list[int], list[str]]:
    """Names in the config -> registered names (wildcards, aliases, 'all'); errors list valid ones."""
    b = cfg["benchmark"]
    methods = METHODS.select(b["methods"])
    datasets = DATASETS.select(b["datasets"])
    protocols = PROTOCOLS.select(b["protocols"])
    seeds = seed_list(b["seeds"])
    for name in cfg["method_options"]:
        METHODS.canonical(name)
    METHODS.canonical(b["baseline"])
    for pair in cfg["eval"]["transfer"]["pairs"]:
        parse_pair(pair)
    check_transfer_kinds(cfg["eval"]["transfer"]["protocols"])
    return methods, datasets, seeds, protocols


def newest_completed(records: list[RunRecord]) -> dict[str, RunRecord]:
    """run hash -> its newest completed record (one pass over the store)."""
    return {r.config.get("run_hash"): r for r in latest_completed(records)}


def done_in_store(newest: RunRecord | None, rc: dict, rerun_outdated: bool = False) -> tuple[bool, str]:
    """(done, why): whether `newest`, the newest completed run of `rc`'s run hash (None: there is
    none), still applies to today's code and data (harness/store/staleness.py), and a note for
    --dry-run: what made it out of date, or what it does not record. The grid and the grid
    runner's re-check before a run both decide with this."""
    if newest is None:
        return False, ""
    stored = newest.config.get("fingerprints")
    reasons = outdated(stored, rc["fingerprints"], shared_code=rerun_outdated)
    if reasons:
        return False, f"{'; '.join(reasons)} since run {newest.run_id}"
    missing = unknown(stored)
    if missing:
        return True, f"run {newest.run_id}: {' and '.join(missing)} unknown (stored before fingerprints)"
    shared = outdated(stored, rc["fingerprints"], shared_code=True)
    if shared:
        return True, f"{'; '.join(shared)} since run {newest.run_id}: --rerun-outdated re-runs it"
    return True, ""


def encoder_applies(results_dir: Path, rc: dict) -> tuple[bool, str]:
    """(usable, note): whether the saved encoder of `rc`'s pretraining identity was made from
    today's pretraining code and data (one saved before fingerprints is reused)."""
    path = encoder_path(results_dir, rc["pretrain_hash"])
    if not path.exists():
        return False, ""
    reasons = not_reusable(encoder_fingerprints(path), pretraining_fingerprints(rc["fingerprints"], rc["dataset"]))
    if reasons:
        return False, f"saved encoder from other code or data ({'; '.join(reasons)}): set aside when the run starts"
    return True, ""


def expand_grid(cfg: dict, runs_dir: Path, records: list[RunRecord] | None = None) -> list[RunSpec]:
    """Every run of the grid, each with what it will do given the store under `runs_dir`:
    skip (completed with today's code and data), evaluate (its encoder is saved under
    ../encoders, from today's pretraining code and data) or pretrain. `records`: the store as
    load_runs read it (read here when None), so a caller that reads it too reads it once."""
    use_plugins(cfg)  # before any name is looked up
    methods, datasets, seeds, protocols = resolve_selection(cfg)
    if records is None:
        records = load_runs(runs_dir, stale_after_s=cfg["run"]["stale_after_s"])
    completed = newest_completed(records)
    interrupted = {r.config.get("run_hash"): r for r in records if r.status == "INTERRUPTED"}
    results_dir = Path(runs_dir).parent
    rerun_outdated = cfg["run"]["rerun_outdated"]
    fingerprints = Fingerprints(cfg["data"]["root"])  # one per plan: each dataset's files once
    specs = []
    for dataset in datasets:
        for method in methods:
            for seed in seeds:
                rc = run_config(cfg, dataset, method, seed, protocols, fingerprints)
                done, why = done_in_store(completed.get(rc["run_hash"]), rc, rerun_outdated)
                spec = RunSpec(dataset, method, seed, rc, done, note=why, rerun_outdated=rerun_outdated,
                               watch={k: cfg["run"][k] for k in WATCH_KEYS})
                if spec.done:
                    spec.action = "skip"
                else:
                    usable, about_encoder = encoder_applies(results_dir, rc)
                    spec.action = "evaluate" if usable else "pretrain"
                    spec.note = "; ".join(n for n in (why, about_encoder) if n)
                if not spec.done and rc["run_hash"] in interrupted:
                    spec.note = "; ".join(n for n in (spec.note, f"re-runs interrupted run "
                                                      f"{interrupted[rc['run_hash']].run_id}") if n)
                specs.append(spec)
    if not specs:
        raise UserError("the grid is empty: select at least one dataset, method and seed")
    return specs
