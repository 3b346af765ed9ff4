"""Whether a stored run, encoder or checkpoint still applies to today's code and data.

Compares the `fingerprints` a run config records (harness/plan/fingerprints.py) with those of
today's plan; DESIGN.md, "When a stored result is stale", is the policy:

- a completed run is out of date when its method's own code or its data changed (shared
  pretraining code only when asked: --rerun-outdated);
- an encoder or checkpoint is reused only for the same pretraining code (method and shared)
  and the same pretraining data;
- what a record does not say (stored before fingerprints) is unknown: reported, never a reason.

Every function returns the reasons in words ("methods/byol_ccsl.py changed"), empty when the
stored thing applies.
"""
from __future__ import annotations

import os
from pathlib import Path

from tqdm.auto import tqdm


def code_changes(old: list | None, new: list) -> list[str]:
    """Files of `new` ([[file, hash]]) whose code differs from `old`'s, in words; [] when `old` is unknown."""
    if not old:
        return []
    before, now = dict(map(tuple, old)), dict(map(tuple, new))
    changed = [f"{f} changed" for f in now if f in before and before[f] != now[f]]
    changed += [f"{f} added" for f in now if f not in before]
    changed += [f"{f} removed" for f in before if f not in now]
    return changed


def data_changes(old: dict | None, new: dict) -> list[str]:
    """Datasets of `new` ({dataset: {card, source}}) whose card fields or source files differ from `old`'s."""
    out = []
    for name, fp in new.items():
        was = (old or {}).get(name)
        if not was:
            continue  # unknown: stored before fingerprints, or a dataset it did not read
        fields = sorted(k for k in fp["card"] if k in was.get("card", {}) and was["card"][k] != fp["card"][k])
        if fields:
            out.append(f"card {name}: {', '.join(fields)} changed")
        if was.get("source") and fp.get("source") and was["source"] != fp["source"]:
            out.append(f"{name}: source files changed")
    return out


def pretraining_fingerprints(fingerprints: dict, dataset: str) -> dict:
    """The part of a run's fingerprints that decides its encoder: both codes and its own data
    (not the transfer targets), as saved with encoders and checkpoints."""
    return {"method_code": fingerprints["method_code"], "shared_code": fingerprints["shared_code"],
            "data": {dataset: fingerprints["data"][dataset]}}


def not_reusable(stored: dict | None, current: dict) -> list[str]:
    """Why an encoder or checkpoint that recorded `stored` (its pretraining fingerprints) may not be
    resumed or evaluated under `current`: other pretraining code or other data."""
    stored = stored or {}
    return (code_changes(stored.get("method_code"), current["method_code"])
            + code_changes(stored.get("shared_code"), current["shared_code"])
            + data_changes(stored.get("data"), current["data"]))


def outdated(stored: dict | None, current: dict, shared_code: bool = False) -> list[str]:
    """Why a completed run that recorded `stored` is out of date under `current`: its method's code
    or its data changed; with `shared_code` (--rerun-outdated) also the shared pretraining code."""
    stored = stored or {}
    reasons = code_changes(stored.get("method_code"), current["method_code"])
    reasons += data_changes(stored.get("data"), current["data"])
    if shared_code:
        reasons += code_changes(stored.get("shared_code"), current["shared_code"])
    return reasons


def unknown(stored: dict | None) -> list[str]:
    """What a stored thing does not record: 'code', 'data' (stored before fingerprints)."""
    stored = stored or {}
    return [part for part, keys in (("code", ("method_code", "shared_code")), ("data", ("data",)))
            if not all(stored.get(k) for k in keys)]


def shapes_differ(expected: dict, stored: dict, prefix: str = "") -> list[str]:
    """Tensors of a stored state (nested dicts of tensors) that do not fit the model's: missing,
    unexpected, or of another shape, in words (a checkpoint of another architecture)."""
    out = []
    for key in sorted(set(expected) | set(stored)):
        name = f"{prefix}{key}"
        if key not in stored or key not in expected:
            out.append(f"{name} {'missing' if key not in stored else 'unexpected'}")
        elif isinstance(expected[key], dict) and isinstance(stored[key], dict):
            out += shapes_differ(expected[key], stored[key], f"{name}.")
        elif hasattr(expected[key], "shape") and tuple(getattr(stored[key], "shape", ())) != tuple(expected[key].shape):
            out.append(f"{name} is {list(getattr(stored[key], 'shape', []))} in the file, "
                       f"{list(expected[key].shape)} in the model")
    return out


def set_aside(path: Path, why: str) -> Path | None:
    """Rename `path` to <name>.stale (kept for inspection) and say why in one line; None when it
    is gone already (another process set it aside first)."""
    aside = path.with_suffix(".stale")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    tqdm.write(f"{path}: {why}; set aside as {aside.name}, starting fresh")
    return aside



def _data_of(record) -> dict | None:
    """The data fingerprint a run record holds for its own dataset (None: unknown)."""
    return ((record.config.get("fingerprints") or {}).get("data") or {}).get(record.config.get("dataset"))


def newest_data(records: list) -> tuple[list, list[tuple]]:
    """Completed run records split into (kept, left out): per dataset label only the runs made on
    the data of its newest run (by run id) that records one; the others, as (record, newest,
    reasons), are listed by the leaderboard instead of averaged with them. Runs that record no
    data fingerprint are kept (unknown)."""
    newest = {}
    for r in sorted(records, key=lambda r: int(r.run_id) if r.run_id.isdigit() else -1):
        if _data_of(r):
            newest[r.key[0]] = r
    kept, left_out = [], []
    for r in records:
        ref = newest.get(r.key[0])
        dataset = r.config.get("dataset")
        reasons = data_changes({dataset: _data_of(r)}, {dataset: _data_of(ref)}) if ref is not None else []
        if reasons:
            left_out.append((r, ref, reasons))
        else:
            kept.append(r)
    return kept, left_out
