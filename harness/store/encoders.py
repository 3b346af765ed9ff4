"""Pretrained encoders in the store: saved once per pretraining identity, evaluated many times.

    <results>/encoders/<pretrain_hash>.safetensors   the encoder's parameters and buffers (what
        evaluation reads) as safetensors tensors, and in the file's metadata (strings; JSON where
        the value is not one):
        train_stats       img_per_s, seconds, peak_mem_mb of the pretraining (JSON)
        curves            its logged scalars, [name, value, step] (metrics.json of the run; JSON)
        pretrain_hash     the identity it was saved under
        run_id            the Sacred run that pretrained it
        fingerprints      the pretraining code and data it was made from (harness/store/staleness.py;
                          JSON; absent in encoders saved before: "unknown", still reused)

Written atomically (temporary file in the same folder, fsync, rename: a reader never sees a
half-written file, which also holds on NFS). safetensors holds tensors and strings only, so
reading one cannot run code, and reading the fingerprints reads the header alone. Its size is
that of the encoder's float32 state, 4 bytes per parameter and buffer element, plus the header.

Stores written before hold <pretrain_hash>.pt, a `torch.save` of the same fields as one dict
(the tensors under "state_dict"), read with `torch.load(weights_only=True)`. They stay readable
and are reused as they are: a format change is no reason to pretrain again. A new save of that
identity writes .safetensors and removes the .pt.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from byol_bench.store.atomic_io import atomic_write_bytes

ENCODERS = "encoders"
SUFFIX = ".safetensors"
LEGACY_SUFFIX = ".pt"
UNREADABLE = (OSError, RuntimeError, EOFError, ValueError, KeyError, SafetensorError)


def encoder_path(results_dir: Path, pretrain_hash: str) -> Path:
    """The saved encoder of `pretrain_hash`: <hash>.safetensors, or the <hash>.pt a store from
    before holds when only that exists. Where none exists, the .safetensors path a save writes."""
    folder = Path(results_dir) / ENCODERS
    path, legacy = folder / f"{pretrain_hash}{SUFFIX}", folder / f"{pretrain_hash}{LEGACY_SUFFIX}"
    return legacy if legacy.exists() and not path.exists() else path


def save_encoder(path: Path, encoder: nn.Module, train_stats: dict, pretrain_hash: str, run_id: str,
                 curves: list | None = None, fingerprints: dict | None = None) -> None:
    """Write the encoder atomically as <hash>.safetensors beside `path` (an existing file of the
    same identity is replaced whole; a .pt of it is removed once the new file is in place).
    `curves`: the pretraining's logged scalars [name, value, step], replayed by evaluation-only
    runs so that every completed run carries its training curves."""
    path = Path(path)
    # A copy of each tensor: safetensors refuses tensors that share storage (tied weights, views).
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
             for k, v in encoder.state_dict().items()}
    metadata = {"pretrain_hash": pretrain_hash, "run_id": str(run_id),
                "train_stats": json.dumps({k: float(v) for k, v in train_stats.items()}),
                "curves": json.dumps(list(curves or []))}
    if fingerprints is not None:
        metadata["fingerprints"] = json.dumps(fingerprints)
    atomic_write_bytes(path.with_suffix(SUFFIX), safetensors_bytes(state, metadata))
    path.with_suffix(LEGACY_SUFFIX).unlink(missing_ok=True)


def load_encoder(path: Path) -> dict | None:
    """The saved payload {state_dict, train_stats, curves, pretrain_hash, run_id[, fingerprints]},
    or None when there is none or it cannot be read (then: pretrain)."""
    path = Path(path)
    try:
        if path.suffix == LEGACY_SUFFIX:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return payload if isinstance(payload, dict) and "state_dict" in payload else None
        with safe_open(path, framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        payload = {"state_dict": state, "train_stats": json.loads(meta["train_stats"]),
                   "curves": json.loads(meta["curves"]), "pretrain_hash": meta["pretrain_hash"],
                   "run_id": meta["run_id"]}
        if "fingerprints" in meta:
            payload["fingerprints"] = json.loads(meta["fingerprints"])
        return payload
    except UNREADABLE:
        return None


def encoder_fingerprints(path: Path) -> dict | None:
    """The fingerprints a saved encoder recorded, None when it records none or cannot be read;
    from the header alone (a .pt: memory-mapped), so a plan does not read the weights."""
    path = Path(path)
    try:
        if path.suffix == LEGACY_SUFFIX:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return payload.get("fingerprints") if isinstance(payload, dict) else None
        with safe_open(path, framework="pt", device="cpu") as f:
            recorded = (f.metadata() or {}).get("fingerprints")
        return json.loads(recorded) if recorded is not None else None
    except UNREADABLE:
        return None
