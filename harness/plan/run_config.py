"""One run's resolved config and its two identities.

`run_config` keeps only the sections the method uses, lets the method adjust them, and adds
`run_hash` (the run: pretraining and evaluation), `pretrain_hash` (what changes the learned
encoder: the run config without `protocols` and `eval`), `describe` (what reporting needs,
so the leaderboard reads the store alone) and `fingerprints` (the code and data it is made
from, compared rather than hashed: harness/plan/fingerprints.py). `method_config` is the
method's part alone, which the timing tools build without a dataset.
"""
from __future__ import annotations

import copy

from byol_bench.config import config_hash
from byol_bench.data import DATASETS
from byol_bench.errors import UserError
from byol_bench.evaluation.metrics import higher_is_better
from byol_bench.evaluation.transfer import transfer_targets
from byol_bench.method import METHODS
from byol_bench.models.backbones import check_backbone
from byol_bench.models.norms import parse_norm
from byol_bench.plan.fingerprints import Fingerprints


def run_config(cfg: dict, dataset: str, method: str, seed: int, protocols: list[str],
               fingerprints: Fingerprints | None = None) -> dict:
    """The resolved config of one run: only the sections the method uses, so changing, say,
    BYOL's head size does not invalidate the random-init runs. `fingerprints`: the plan's (one
    per grid, so each dataset's files are fingerprinted once); a new one if None."""
    cls = METHODS.get(method)
    card = DATASETS.get(dataset)
    rc = {"dataset": dataset, "method": method, "seed": seed, "protocols": list(protocols),
          "data": copy.deepcopy(cfg["data"]), "eval": copy.deepcopy(cfg["eval"])}
    rc["data"]["image_size"] = cfg["data"]["image_size"] or card.image_size
    if cfg["data"]["pretrain_splits"] == "unlabeled" and "unlabeled" not in card.splits:
        raise UserError(f"data.pretrain_splits is 'unlabeled' but dataset {dataset!r} has no unlabeled "
                        "split; use train or train+unlabeled")
    if cfg["benchmark"]["recipe"]:
        rc["recipe"] = cfg["benchmark"]["recipe"]  # identity, and the leaderboard's dataset label
    method_config(cfg, method, rc)
    if "backbone" in rc:  # an unknown or unbuildable backbone fails here, before anything runs
        check_backbone(rc["backbone"], card.channels, rc["data"]["image_size"])
    rc["run_hash"] = config_hash(rc)  # the run: pretraining and evaluation (as before)
    rc["pretrain_hash"] = config_hash(pretraining_part(rc))
    rc["describe"] = describe_run(rc, cls, card)
    if fingerprints is None:
        fingerprints = Fingerprints(cfg["data"]["root"])
    targets = [t["target"] for t in rc["describe"]["transfer"].values()]
    rc["fingerprints"] = fingerprints.of_run(rc, [dataset, *targets])
    return rc


# What evaluation reads but pretraining does not: it changes the run, not the encoder.
EVALUATION_KEYS = ("protocols", "eval")
# Keys added to a run config after its run_hash, so never part of any identity.
DERIVED_KEYS = ("run_hash", "pretrain_hash", "describe", "fingerprints")


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


def method_config(cfg: dict, method: str, rc: dict | None = None, options: dict | None = None) -> dict:
    """Add the method's part of a run config to `rc` (a new dict if None) and return it:
    `method`, its resolved `method_options` (the config's, then `options` over them) and copies
    of the config sections the method reads, after the method's `configure`. The runner's run
    configs and the timing tools (which have no dataset) are built by this one function."""
    cls = METHODS.get(method)
    bb = cfg["backbone"]
    if bb["name"] == "small-cnn" and (bb["stem"] or bb["dropout"]):
        raise UserError("backbone.stem and backbone.dropout apply to the ResNets only, not small-cnn")
    rc = {} if rc is None else rc
    given = {**(cfg["method_options"].get(method) or {}), **(options or {})}
    rc["method"] = method
    rc["method_options"] = cls.resolve_options(method, given)
    for section in cls.config_sections:
        rc[section] = copy.deepcopy(cfg[section])
    cls.configure(rc)
    if "backbone" in rc and parse_norm(rc["backbone"]["norm"]) != ("none", True):
        # The WS gain only acts where no norm layer follows the conv (none+ws): elsewhere it is
        # not part of what runs, so it stays out of the identity. none+ws keeps it, which also
        # re-runs stores made with the unscaled WS that overflowed.
        rc["backbone"].pop("ws_gain", None)
    return rc
