"""Expand a config into the grid dataset x method x seed, each a fully resolved run config."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import seed_list
from harness.data import DATASETS
from harness.errors import UserError
from harness.evaluation import PROTOCOLS
from harness.evaluation.transfer import check_transfer_kinds, parse_pair
from harness.method import METHODS
from harness.plan.run_config import run_config
from harness.store.encoders import encoder_path
from harness.store.records import load_runs


@dataclass
class RunSpec:
    dataset: str
    method: str
    seed: int
    config: dict            # resolved run config, including run_hash and pretrain_hash
    done: bool = False
    action: str = "pretrain"  # skip (completed) | evaluate (encoder saved) | pretrain
    note: str = ""            # e.g. "interrupted run 7 (no heartbeat for 300 s)"

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


def expand_grid(cfg: dict, runs_dir: Path) -> list[RunSpec]:
    """Every run of the grid, each with what it will do given the store under `runs_dir`:
    skip (completed), evaluate (its encoder is saved under ../encoders) or pretrain."""
    methods, datasets, seeds, protocols = resolve_selection(cfg)
    records = load_runs(runs_dir, stale_after_s=cfg["run"]["stale_after_s"])
    done = {r.config.get("run_hash") for r in records if r.status == "COMPLETED"}
    interrupted = {r.config.get("run_hash"): r for r in records if r.status == "INTERRUPTED"}
    results_dir = Path(runs_dir).parent
    specs = []
    for dataset in datasets:
        for method in methods:
            for seed in seeds:
                rc = run_config(cfg, dataset, method, seed, protocols)
                spec = RunSpec(dataset, method, seed, rc, rc["run_hash"] in done)
                if spec.done:
                    spec.action = "skip"
                elif encoder_path(results_dir, rc["pretrain_hash"]).exists():
                    spec.action = "evaluate"
                if not spec.done and rc["run_hash"] in interrupted:
                    spec.note = f"re-runs interrupted run {interrupted[rc['run_hash']].run_id}"
                specs.append(spec)
    if not specs:
        raise UserError("the grid is empty: select at least one dataset, method and seed")
    return specs
