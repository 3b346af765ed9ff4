"""Expand a config into the grid dataset x method x seed, each a fully resolved run config."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from harness.config import config_hash, seed_list
from harness.data import DATASETS
from harness.data.cards import register_cards
from harness.errors import UserError
from harness.evaluation import PROTOCOLS
from harness.evaluation.transfer import check_transfer_kinds, parse_pair
from harness.method import METHODS, import_methods
from harness.models.norms import parse_norm
from harness.encoder_store import encoder_path
from harness.evaluation.transfer import transfer_targets
from harness.metrics import higher_is_better
from harness.results import load_runs


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
    import_methods()
    register_cards()
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


def run_config(cfg: dict, dataset: str, method: str, seed: int, protocols: list[str]) -> dict:
    """The resolved config of one run: only the sections the method uses, so changing, say,
    BYOL's head size does not invalidate the random-init runs."""
    cls = METHODS.get(method)
    card = DATASETS.get(dataset)
    options = cls.resolve_options(method, cfg["method_options"].get(method))
    rc = {"dataset": dataset, "method": method, "seed": seed, "protocols": list(protocols),
          "data": copy.deepcopy(cfg["data"]), "eval": copy.deepcopy(cfg["eval"]),
          "method_options": options}
    rc["data"]["image_size"] = cfg["data"]["image_size"] or card.image_size
    if cfg["data"]["pretrain_splits"] == "unlabeled" and "unlabeled" not in card.splits:
        raise UserError(f"data.pretrain_splits is 'unlabeled' but dataset {dataset!r} has no unlabeled "
                        "split; use train or train+unlabeled")
    bb = cfg["backbone"]
    if bb["name"] == "small-cnn" and (bb["stem"] or bb["dropout"]):
        raise UserError("backbone.stem and backbone.dropout apply to the ResNets only, not small-cnn")
    if cfg["benchmark"]["recipe"]:
        rc["recipe"] = cfg["benchmark"]["recipe"]  # identity, and the leaderboard's dataset label
    for section in cls.config_sections:
        rc[section] = copy.deepcopy(cfg[section])
    cls.configure(rc)
    if "backbone" in rc and parse_norm(rc["backbone"]["norm"]) != ("none", True):
        # The WS gain only acts where no norm layer follows the conv (none+ws): elsewhere it is
        # not part of what runs, so it stays out of the identity. none+ws keeps it, which also
        # re-runs stores made with the unscaled WS that overflowed.
        rc["backbone"].pop("ws_gain", None)
    rc["run_hash"] = config_hash(rc)  # the run: pretraining and evaluation (as before)
    rc["pretrain_hash"] = config_hash(pretraining_part(rc))
    rc["describe"] = describe_run(rc, cls, card)
    return rc


# What evaluation reads but pretraining does not: it changes the run, not the encoder.
EVALUATION_KEYS = ("protocols", "eval")
# Keys added to a run config after its run_hash, so never part of any identity.
DERIVED_KEYS = ("run_hash", "pretrain_hash", "describe")


def pretraining_part(rc: dict) -> dict:
    """The run config minus evaluation: equal for two runs iff they learn the same encoder."""
    return {k: v for k, v in rc.items() if k not in EVALUATION_KEYS + DERIVED_KEYS}


def describe_run(rc: dict, cls, card) -> dict:
    """What reporting needs to know about the run, recorded in the run itself so the
    leaderboard reads the store alone (not today's cards or registry)."""
    targets = {}
    if "transfer" in rc["protocols"]:
        for target in transfer_targets(rc["dataset"], rc["eval"]["transfer"]["pairs"]):
            tcard = DATASETS.get(target)
            for kind in rc["eval"]["transfer"]["protocols"]:
                targets[f"transfer-{target}-{kind}"] = {"target": target, "kind": kind, **_card_facts(tcard)}
    return {"dataset": {"name": card.name, **_card_facts(card)},
            "method": {"role": "reference" if cls.reference else "method",
                       "description": METHODS.describe(rc["method"])},
            "transfer": targets}


def _card_facts(card) -> dict:
    return {"task": card.task, "primary_metric": card.primary_metric,
            "higher_is_better": higher_is_better(card.primary_metric), "sources": list(card.sources)}


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
