"""Where the leaderboard's numbers come from, read from the runs' own Sacred records.

Sacred writes into run.json the host (hostname, cpu, gpus, python_version), the package
dependencies it detected ("name==version"), the git repositories (commit, dirty) and the
start time; config.json holds the run hash, the seed and the settings. Nothing here asks the
current machine anything: the provenance is that of the runs, whoever rebuilds the tables.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

KEY_PACKAGES = ("torch", "torchvision", "accelerate", "sacred", "numpy", "scipy")
# Settings worth seeing at a glance, as dotted paths into config.json.
KEY_SETTINGS = ("backbone.name", "pretrain.epochs", "pretrain.batch_size", "data.image_size")


@dataclass
class Provenance:
    """Counts of distinct values over the runs (value -> number of runs)."""
    n_runs: int = 0
    run_hashes: list[str] = field(default_factory=list)
    commits: Counter = field(default_factory=Counter)        # "abc1234" / "abc1234 (dirty)" / "not recorded"
    cpus: Counter = field(default_factory=Counter)
    gpus: Counter = field(default_factory=Counter)
    pythons: Counter = field(default_factory=Counter)
    packages: dict[str, Counter] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    settings: dict[str, dict[str, Counter]] = field(default_factory=dict)   # dataset -> setting -> values
    started: tuple[str, str] | None = None                  # first and last start_time

    @property
    def store_digest(self) -> str:
        """One short hash of the sorted run hashes: the same runs give the same digest."""
        return hashlib.sha256("\n".join(sorted(self.run_hashes)).encode()).hexdigest()[:12]


def _read_run_json(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads((Path(path) / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _commit_label(run: dict) -> str:
    repos = (run.get("experiment") or {}).get("repositories") or []
    labels = sorted({f"{r.get('commit', '?')[:10]}{' (dirty)' if r.get('dirty') else ''}"
                     for r in repos if isinstance(r, dict)})
    # A run from an installed wheel has no commit; its adapter recorded the package's version.
    installed = [d.split("==", 1)[1] for d in (run.get("experiment") or {}).get("dependencies") or []
                 if isinstance(d, str) and d.startswith("byol-bench==")]
    if not labels and installed:
        return f"none (installed byol-bench {installed[0]})"
    return ", ".join(labels) if labels else "not recorded"


def _gpu_label(host: dict) -> str:
    gpus = (host.get("gpus") or {}).get("gpus") if isinstance(host.get("gpus"), dict) else None
    if not gpus:
        return "none recorded"
    models = Counter(g.get("model", "?") for g in gpus if isinstance(g, dict))
    return ", ".join(f"{n} x {model}" for model, n in sorted(models.items()))


def _dotted(config: dict, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def collect_provenance(records) -> Provenance:
    """Provenance of the completed run records the tables are built from."""
    prov = Provenance(packages={name: Counter() for name in KEY_PACKAGES})
    starts = []
    seeds = set()
    for record in records:
        # The record carries what the store read of run.json; read it only for one that does not.
        run = record.sacred if getattr(record, "sacred", None) is not None else _read_run_json(record.path)
        host = run.get("host") or {}
        prov.n_runs += 1
        prov.run_hashes.append(str(record.config.get("run_hash", record.run_id)))
        prov.commits[_commit_label(run)] += 1
        prov.cpus[str(host.get("cpu", "not recorded"))] += 1
        prov.gpus[_gpu_label(host)] += 1
        prov.pythons[str(host.get("python_version", "not recorded"))] += 1
        versions = {}
        for dep in (run.get("experiment") or {}).get("dependencies") or []:
            name, _, version = str(dep).partition("==")
            versions[name.lower()] = version
        for name in KEY_PACKAGES:
            prov.packages[name][versions.get(name, "not recorded")] += 1
        dataset, _, seed = record.key
        seeds.add(seed)
        per_dataset = prov.settings.setdefault(dataset, {s: Counter() for s in KEY_SETTINGS})
        for setting in KEY_SETTINGS:
            value = _dotted(record.config, setting)
            if value is not None:
                per_dataset[setting][str(value)] += 1
        if run.get("start_time"):
            starts.append(str(run["start_time"]))
    prov.seeds = sorted(seeds)
    prov.run_hashes.sort()
    if starts:
        prov.started = (min(starts), max(starts))
    return prov


def describe(counter: Counter) -> str:
    """'a' when every run agrees, else 'a (3 runs), b (1 run)', most frequent first."""
    if len(counter) == 1:
        (value, _), = counter.items()
        return value
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in items)
