"""Benchmark configuration: defaults, YAML files, dotted `--set` overrides, validation, hashing.

The defaults below are the schema: a config file or override may only name keys that exist
here (an unknown key is an error that names it and lists the valid ones), and a value must
have the default's type (ints are accepted where floats are expected). Per-method options live
under `method_options.<method>` and are checked against the method's own `options`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from byol_bench.errors import UserError

CLAIM_HEARTBEAT_S = 10.0
"""Default period of a run claim's heartbeat (`run.heartbeat_s`; harness/store/claims.py)."""
STALE_MIN_BEATS = 3
"""`run.stale_after_s` must span this many heartbeats: one late or failed beat is no death."""

DEFAULTS: dict[str, Any] = {
    "benchmark": {
        "methods": ["byol", "random-init", "supervised"],
        "datasets": ["digits"],
        "seeds": 3,                  # a count (seeds 0..n-1) or an explicit list
        "protocols": ["linear", "knn"],
        "baseline": "byol",          # the method every other is compared with, paired by seed
        "recipe": "",                # a name for the training recipe (e.g. garg-jain-code): part of
                                     # the run's identity and of the leaderboard's dataset label, so
                                     # two recipes in one store are never merged into one table
    },
    "data": {
        "root": "data",              # --data-root; not part of a run's identity
        "image_size": 0,             # 0: the dataset card's size
        "num_workers": 0,            # DataLoader workers for augmentation
        "cache_dir": "",             # decoded-image cache; "" = <results-dir>/cache
        "pretrain_splits": "train+unlabeled",  # what SSL pretraining sees: train+unlabeled |
                                     # unlabeled | train (never val or test)
        "train_subsample": 0,        # >0: the labelled train split cut to this many images,
                                     # stratified, drawn with the card's split seed (ours)
        "cards_dirs": [],            # more folders of dataset cards (*.yaml), read after the shipped
                                     # cards and the plugins' (not part of a run's identity)
    },
    "backbone": {
        "name": "small-cnn",
        "norm": "bn",                # bn | gn | ln | none, each optionally +ws
        "small_stem": True,          # ResNets: 3x3 stride-1 stem, no max-pool (see `stem`)
        "stem": "",                  # ResNets: imagenet | small | small-maxpool; "" = from small_stem
        "dropout": 0.0,              # ResNets: Dropout(p) after each residual block of layer1..4
        "dropout_stem": False,       # ResNets, dropout > 0: also after the stem's activation and pool
        "gn_groups": 32,
        "width": 32,                 # small-cnn only
        "ws_gain": 1.0,              # none+ws only: scaled WS, weight * gain / sqrt(fan_in) (ours)
        "timm_options": {},          # name timm/<model> only: more arguments of timm.create_model
                                     # (e.g. patch_size: 4, drop_path_rate: 0.1, output_stride: 8)
    },
    "pretrain": {
        "epochs": 20,
        "batch_size": 128,           # global batch (split over processes)
        "optimizer": "adamw",        # adamw | sgd | lars
        "lr": 2.0e-3,                # for the global batch size
        "momentum": 0.9,
        "weight_decay": 1.0e-4,      # not on biases and norm parameters (see weight_decay_all)
        "warmup_epochs": 2,
        "lr_schedule": "warmup_cosine",  # warmup_cosine | step (lr * gamma^(epoch // step_epochs))
        "lr_step_epochs": 10,        # step schedule: epochs between decays
        "lr_gamma": 0.1,             # step schedule: factor per decay
        "weight_decay_all": False,   # true: decay biases and norm parameters too
        "mixed_precision": "no",     # no | fp16 | bf16 (Accelerate)
        "max_grad_norm": 0.0,        # 0: no clipping
        "channels_last": False,      # NHWC activations for the conv layers, on any device (speed, not identity)
        "compile": False,            # torch.compile the online and target forwards (speed, not identity)
        "drop_last": True,
    },
    "byol": {
        "proj_hidden": 512,          # paper: 4096
        "proj_dim": 128,             # paper: 256
        "pred_hidden": 512,          # paper: 4096
        "tau_base": 0.99,            # paper: 0.996 (ImageNet); 0.99 for small datasets
        "heads_norm": "bn",          # normalisation inside projector/predictor
        "tau_schedule": "cosine",    # cosine (BYOL: tau_base -> 1) | constant (tau_base throughout)
        "copy_target_bn_buffers": True,  # copy BN running stats online -> target after each step
    },
    "augment": {                     # BYOL (Grill et al. 2020, Table 6); pairs are (view 1, view 2)
        "backend": "batched",        # batched (on the training device) | v2 (per image, in workers)
        "crop_scale": [0.08, 1.0],
        "hflip_p": 0.5,
        "jitter_p": 0.8,
        "brightness": 0.4,
        "contrast": 0.4,
        "saturation": 0.2,           # ignored for grayscale data
        "hue": 0.1,                  # ignored for grayscale data
        "grayscale_p": 0.2,          # ignored for grayscale data
        "blur_p": [1.0, 0.1],
        "blur_sigma": [0.1, 2.0],
        "solarize_p": [0.0, 0.2],
    },
    "run": {                         # how runs are executed, not what they compute (not in the run hash)
        # Under DDP the other processes wait (on a gloo group) this long for the main process's
        # evaluation and at every agreement check; ChestX-ray14's semi + transfer evaluation
        # takes hours on one GPU, far past the NCCL group's default 10 minutes.
        "wait_timeout_h": 48.0,
        # A RUNNING run whose Sacred heartbeat (every 10 s) is older than this was killed: it is
        # shown as interrupted and run again. A run claim (harness/store/claims.py) whose content
        # a reader sees unchanged this long, on its own clock, is taken over: at least
        # STALE_MIN_BEATS claim heartbeats.
        "stale_after_s": 120.0,
        "heartbeat_s": CLAIM_HEARTBEAT_S,  # seconds between rewrites of a held run claim
        # Pretraining checkpoints: at the end of the first epoch after this many minutes
        # (0: every epoch), and at the next step after SIGTERM / SIGUSR2.
        "checkpoint_every_min": 10.0,
        # --rerun-outdated: also re-run completed runs made with other shared pretraining code
        # (a method's own code or its data changing re-runs them always; README, "What makes a
        # stored result stale").
        "rerun_outdated": False,
        # Modules imported before anything is looked up (--plugins): each registers methods,
        # formats, protocols or backbones on import. Installed plugins' entry points need no entry.
        "plugins": [],
        # Watching a run (README, "Watch a run"): Accelerate's tracker (tensorboard | wandb |
        # mlflow | aim | none), written under <results-dir>/<tracker>/<run id>-<run hash>/.
        "log_with": "tensorboard",
        "log_every_steps": 50,       # loss, method terms, LR, tau, grad norm, img/s: one host sync each
        # The collapse signal (proj_std, RankMe: a forward of 512 val images) every this many
        # epochs (0: never). 1 costs nothing at scale; in a tiny CPU run whose epoch is a few
        # dozen steps it is a tenth of the training time (README, "The default benchmark").
        "monitor_every": 1,
        "monitor_knn_every": 0,      # >0: kNN accuracy on val every this many epochs (never test)
    },
    "slurm": {                       # --launcher slurm: each run is one task of a submitit job array.
                                     # Resources only (like `run`, never part of a run's identity).
        "partition": "",             # "" = the cluster's default partition
        "account": "",
        "qos": "",
        "time_min": 240,             # time limit of one array task (one run)
        "gpus_per_run": 1,           # >1: the run is data-parallel over that many GPUs (one task each)
        "tasks_per_run": 0,          # processes per run; 0 = one per GPU (gpus_per_run, at least 1)
        "cpus_per_run": 8,           # divided between the run's tasks; sets torch's thread count
        "mem_gb": 32.0,
        "array_parallelism": 64,     # array tasks running at once
        "max_requeue": 3,            # requeues after a time-out (a preemption always requeues)
        "signal_delay_s": 120,       # SIGUSR2 this long before the time limit: checkpoint, requeue
        "folder": "",                # submitit's scripts, pickles and logs; "" = <results-dir>/slurm
        "poll_s": 10.0,              # --wait: seconds between looks at squeue and the store
    },
    "method_options": {},            # {method: {option: value}}; see each method's `options`
    "eval": {
        "batch_size": 512,
        "linear": {
            "weight_decays": [0.0, 1.0e-5, 1.0e-4, 1.0e-3, 1.0e-2],  # chosen on val
            "max_iter": 200,         # L-BFGS iterations per weight decay
            # On CPU, the fits' torch threads (0: the run's own). The probe's matrices are small
            # (n x d features, C classes): a second thread mostly waits on OpenMP, and 1 thread
            # makes the probe's rounding independent of the core count. How fast, not what:
            # out of the run hash, like the run's own thread count.
            "cpu_threads": 0,
        },
        "knn": {"k": 20, "temperature": 0.07},
        "semi": {"fractions": [1, 10, 100]},        # % of the labelled train split, per seed
        "finetune": {                               # used by semi and transfer fine-tuning
            "epochs": 20,                           # the best epoch is chosen on val
            "lr": 1.0e-3,
            "batch_size": 64,
            "weight_decay": 1.0e-4,
            "hflip_p": 0.5,
        },
        "finetune_mlp": {                           # the finetune-mlp protocol (Garg & Jain's code)
            "epochs": 20,                           # the best epoch is chosen on val
            "lr": 1.0e-3,
            "momentum": 0.9,
            "batch_size": 64,
            "weight_decay": 0.0,
            "hidden": 512,
            "hflip_p": 0.5,
        },
        "transfer": {
            "pairs": [],                            # ["pretrain-dataset->eval-dataset", ...]
            "protocols": ["linear", "finetune"],
        },
    },
}

# Keys whose value must be one of a few words (checked with the type, so a typo fails up front).
CHOICES: dict[str, tuple[str, ...]] = {
    "data.pretrain_splits": ("train+unlabeled", "unlabeled", "train"),
    "backbone.stem": ("", "imagenet", "small", "small-maxpool"),
    "pretrain.lr_schedule": ("warmup_cosine", "step"),
    "byol.tau_schedule": ("cosine", "constant"),
    "run.log_with": ("tensorboard", "wandb", "mlflow", "aim", "none"),
}
# Numeric keys and the values that mean something, in interval notation (`[` `]` closed,
# `(` `)` open): checked with the type, so `--set pretrain.batch_size=0` fails up front instead
# of training with something else. A list key's every element is checked (PAIRS: two, one per view).
# The slurm section is checked by its launcher (byol_bench.launch.slurm), all problems in one line.
BOUNDS: dict[str, str] = {
    "data.image_size": "[0, inf)", "data.num_workers": "[0, inf)", "data.train_subsample": "[0, inf)",
    "backbone.dropout": "[0, 1)", "backbone.gn_groups": "[1, inf)", "backbone.width": "[1, inf)",
    "backbone.ws_gain": "(0, inf)",
    "pretrain.epochs": "[1, inf)", "pretrain.batch_size": "[1, inf)", "pretrain.lr": "[0, inf)",
    "pretrain.momentum": "[0, 1]", "pretrain.weight_decay": "[0, inf)", "pretrain.warmup_epochs": "[0, inf)",
    "pretrain.lr_step_epochs": "[1, inf)", "pretrain.lr_gamma": "(0, inf)", "pretrain.max_grad_norm": "[0, inf)",
    "byol.proj_hidden": "[1, inf)", "byol.proj_dim": "[1, inf)", "byol.pred_hidden": "[1, inf)",
    "byol.tau_base": "[0, 1]",
    "augment.crop_scale": "(0, 1]", "augment.hflip_p": "[0, 1]", "augment.jitter_p": "[0, 1]",
    "augment.brightness": "[0, inf)", "augment.contrast": "[0, inf)", "augment.saturation": "[0, inf)",
    "augment.hue": "[0, 0.5]", "augment.grayscale_p": "[0, 1]", "augment.blur_p": "[0, 1]",
    "augment.blur_sigma": "(0, inf)", "augment.solarize_p": "[0, 1]",
    "run.wait_timeout_h": "(0, inf)", "run.checkpoint_every_min": "[0, inf)",
    "run.log_every_steps": "[1, inf)", "run.monitor_every": "[0, inf)", "run.monitor_knn_every": "[0, inf)",
    "eval.batch_size": "[1, inf)", "eval.linear.weight_decays": "[0, inf)", "eval.linear.max_iter": "[1, inf)",
    "eval.linear.cpu_threads": "[0, inf)",
    "eval.knn.k": "[1, inf)", "eval.knn.temperature": "(0, inf)", "eval.semi.fractions": "(0, 100]",
    "eval.finetune.epochs": "[1, inf)", "eval.finetune.lr": "[0, inf)", "eval.finetune.batch_size": "[1, inf)",
    "eval.finetune.weight_decay": "[0, inf)", "eval.finetune.hflip_p": "[0, 1]",
    "eval.finetune_mlp.epochs": "[1, inf)", "eval.finetune_mlp.lr": "[0, inf)",
    "eval.finetune_mlp.momentum": "[0, 1]", "eval.finetune_mlp.batch_size": "[1, inf)",
    "eval.finetune_mlp.weight_decay": "[0, inf)", "eval.finetune_mlp.hidden": "[1, inf)",
    "eval.finetune_mlp.hflip_p": "[0, 1]",
}
PAIRS = ("augment.crop_scale", "augment.blur_p", "augment.blur_sigma", "augment.solarize_p")
ORDERED_PAIRS = ("augment.crop_scale", "augment.blur_sigma")  # (low, high)
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
_INTERVAL = re.compile(r"([\[(])(\S+), (\S+)([\])])")
# Keys whose value may take more than the default's type.
_EXTRA_TYPES: dict[str, tuple[type, ...]] = {"benchmark.seeds": (int, list)}
# Keys that say where things are or how fast they go, not what is computed: not in the run hash.
NON_IDENTITY_KEYS = ("data.root", "data.num_workers", "data.cache_dir", "data.cards_dirs", "pretrain.channels_last",
                     "pretrain.compile", "eval.linear.cpu_threads")
# Keys added after runs were first stored: at their default (the behaviour before they existed)
# they stay out of the run hash, so existing stores keep their identities and are not re-run.
ADDED_KEYS = ("data.pretrain_splits", "data.train_subsample", "backbone.stem",
              "backbone.dropout", "backbone.dropout_stem", "pretrain.lr_schedule", "pretrain.lr_step_epochs", "pretrain.lr_gamma",
              "pretrain.weight_decay_all", "byol.tau_schedule", "byol.copy_target_bn_buffers",
              "eval.finetune_mlp", "backbone.timm_options")


def _type_ok(key: str, value: Any, default: Any) -> bool:
    allowed = _EXTRA_TYPES.get(key)
    if allowed:
        return isinstance(value, allowed) and not isinstance(value, bool)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _in_interval(value: Any, interval: str) -> bool:
    low_mark, low, high, high_mark = _INTERVAL.fullmatch(interval).groups()
    low, high = float(low), float(high)
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value >= low if low_mark == "[" else value > low)
            and (value <= high if high_mark == "]" else value < high))


def _range_phrase(interval: str) -> str:
    """'[1, inf)' -> 'at least 1', '(0, inf)' -> 'greater than 0', else 'in [0, 1]'."""
    low_mark, low, high, _ = _INTERVAL.fullmatch(interval).groups()
    if high == "inf":
        return f"at least {low}" if low_mark == "[" else f"greater than {low}"
    return f"in {interval}"


def check_bounds(path: str, value: Any) -> None:
    """UserError when a numeric key's value (or a list key's element) means nothing (BOUNDS)."""
    if path == "benchmark.seeds":
        if isinstance(value, int) and value < 1:
            raise UserError(f"config key 'benchmark.seeds' must be a count of at least 1 or a list of seeds, got {value}")
        if isinstance(value, list) and (not value or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in value)):
            raise UserError(f"config key 'benchmark.seeds' must be a non-empty list of integers in "
                            f"[0, {MAX_SEED}], got {value!r}")
        return
    interval = BOUNDS.get(path)
    if interval is None:
        return
    items = value if isinstance(value, list) else [value]
    if path in PAIRS and len(items) != 2:
        raise UserError(f"config key {path!r} wants two values (view 1, view 2 / low, high), got {value!r}")
    if not items:
        raise UserError(f"config key {path!r} wants at least one value, got []")
    if not all(_in_interval(v, interval) for v in items):
        each = "each value " if isinstance(value, list) else ""
        raise UserError(f"config key {path!r}: {each}must be {_range_phrase(interval)}, got {value!r}")
    if path in ORDERED_PAIRS and items[0] > items[1]:
        raise UserError(f"config key {path!r} is (low, high): low must not exceed high, got {value!r}")


def merge(base: dict, update: dict, schema: dict = DEFAULTS, prefix: str = "") -> dict:
    """Deep-merge `update` into a copy of `base`, checking every key and type against `schema`."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{prefix}{key}"
        if path == "method_options":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise UserError("method_options must map method names to {option: value} mappings")
            for method, opts in value.items():
                out["method_options"].setdefault(method, {}).update(copy.deepcopy(opts))
            continue
        if path == "backbone.timm_options":  # free arguments of timm.create_model, checked by timm
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise UserError("backbone.timm_options must map timm.create_model argument names to values")
            out[key] = {**out[key], **copy.deepcopy(value)}
            continue
        if key not in schema:
            raise UserError(f"unknown config key {path!r}; valid keys"
                            f"{' under ' + prefix[:-1] if prefix else ''}: {', '.join(schema)}")
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise UserError(f"config key {path!r} is a section; give it a mapping, e.g. {path}.{next(iter(default))}")
            out[key] = merge(out[key], value, default, path + ".")
        else:
            if not _type_ok(path, value, default):
                want = " or ".join(t.__name__ for t in _EXTRA_TYPES.get(path, (type(default),)))
                raise UserError(f"config key {path!r} wants a {want}, got {value!r} ({type(value).__name__})")
            if path in CHOICES and value not in CHOICES[path]:
                raise UserError(f"config key {path!r} must be one of "
                                f"{', '.join(repr(c) for c in CHOICES[path])}, got {value!r}")
            check_bounds(path, value)
            out[key] = float(value) if isinstance(default, float) else copy.deepcopy(value)
    return out


def read_yaml(path) -> dict:
    """`path`: a file name, a Path, or a shipped config (an importlib.resources Traversable)."""
    try:
        data = yaml.safe_load((Path(path) if isinstance(path, str) else path).read_text())
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_set(item: str) -> dict:
    """'pretrain.epochs=5' -> {'pretrain': {'epochs': 5}}; the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise UserError(f"malformed --set {item!r}; expected dotted.key=value, e.g. pretrain.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "4e-3" as a string; a user means the number
    nested: dict = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> dict:
    """DEFAULTS <- YAML file <- each --set, validated at every step."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        cfg = merge(cfg, read_yaml(path))
    for item in overrides:
        cfg = merge(cfg, parse_set(item))
    check_claim_timing(cfg["run"])
    return cfg


def check_claim_timing(run: dict) -> None:
    """A claim is judged dead after `stale_after_s` without a change: that must span several
    heartbeats, or a live run is taken over between two of its beats."""
    if run["heartbeat_s"] <= 0:
        raise UserError(f"run.heartbeat_s must be a positive number of seconds, got {run['heartbeat_s']:g}")
    if run["stale_after_s"] < round(STALE_MIN_BEATS * run["heartbeat_s"], 9):  # 3 * 0.2 is 0.6000000000000001
        raise UserError(f"run.stale_after_s ({run['stale_after_s']:g}) must be at least {STALE_MIN_BEATS} "
                        f"heartbeats (run.heartbeat_s = {run['heartbeat_s']:g}): "
                        f"{STALE_MIN_BEATS * run['heartbeat_s']:g} s or more")


def seed_list(seeds: int | list) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise UserError(f"--seeds must be a positive count or a list of integers, got {seeds}")
        return list(range(seeds))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError(f"--seeds must be a positive count or a list of integers, got {seeds!r}")
    return list(dict.fromkeys(seeds))


def drop_keys(cfg: dict, dotted: tuple[str, ...]) -> dict:
    """`cfg` without the dotted keys. Only the dicts on the dropped keys' paths are copied; the
    rest is shared with `cfg` (read-only use: a plan hashes each run config twice, and a deep
    copy of its fingerprints was most of a 780-run plan's time)."""
    out = dict(cfg)
    for key in dotted:
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                break
            node[p] = node = dict(child)
        else:
            node.pop(leaf, None)
    return out


def default_of(dotted: str) -> Any:
    node: Any = DEFAULTS
    for part in dotted.split("."):
        node = node[part]
    return node


def _at_default(cfg: dict, dotted: str) -> bool:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node == default_of(dotted)


def config_hash(run_config: dict) -> str:
    """Identity of a run: sha256 of its resolved config without the NON_IDENTITY_KEYS, and
    without the ADDED_KEYS that hold their defaults (old stores keep their hashes)."""
    unchanged = tuple(k for k in ADDED_KEYS if _at_default(run_config, k))
    blob = json.dumps(drop_keys(run_config, NON_IDENTITY_KEYS + unchanged), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
