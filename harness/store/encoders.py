"""Pretrained encoders in the store: saved once per pretraining identity, evaluated many times.

    <results>/encoders/<pretrain_hash>.pt     torch.save of a dict of tensors and plain values:
        state_dict        the encoder's parameters and buffers (what evaluation reads)
        train_stats       img_per_s, seconds, peak_mem_mb of the pretraining
        curves            its logged scalars, [name, value, step] (metrics.json of the run)
        pretrain_hash     the identity it was saved under
        run_id            the Sacred run that pretrained it
        fingerprints      the pretraining code and data it was made from (harness/store/staleness.py;
                          absent in encoders saved before: "unknown", still reused)

Written atomically (temporary file in the same folder, fsync, rename: a reader never sees a
half-written file, which also holds on NFS) and read with `torch.load(weights_only=True)`, which
cannot run code. Its size is that of the encoder's float32 state: 4 bytes per parameter and
buffer element (measured: ResNet-18 on 3 channels 44.75 MB; the small CNN of configs/default.yaml on
digits 0.97 MB).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from byol_bench.store.atomic_io import atomic_torch_save

ENCODERS = "encoders"


def encoder_path(results_dir: Path, pretrain_hash: str) -> Path:
    return Path(results_dir) / ENCODERS / f"{pretrain_hash}.pt"


def save_encoder(path: Path, encoder: nn.Module, train_stats: dict, pretrain_hash: str, run_id: str,
                 curves: list | None = None, fingerprints: dict | None = None) -> None:
    """Write the encoder atomically; an existing file of the same identity is replaced whole.
    `curves`: the pretraining's logged scalars [name, value, step], replayed by evaluation-only
    runs so that every completed run carries its training curves."""
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    payload = {"state_dict": state, "train_stats": {k: float(v) for k, v in train_stats.items()},
               "pretrain_hash": pretrain_hash, "run_id": str(run_id), "curves": list(curves or [])}
    if fingerprints is not None:
        payload["fingerprints"] = fingerprints
    atomic_torch_save(path, payload)


def load_encoder(path: Path) -> dict | None:
    """The saved payload, or None when there is none or it cannot be read (then: pretrain)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        return None
    return payload


def encoder_fingerprints(path: Path) -> dict | None:
    """The fingerprints a saved encoder recorded, None when it records none or cannot be read;
    memory-mapped, so a plan reads the small header, not the weights."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    return payload.get("fingerprints") if isinstance(payload, dict) else None
