"""What the launchers share: which runs are still to do, their state in the store, progress
lines, and the closing summary and leaderboard.

The launchers count from the store, never from what their workers say: a worker that skipped a
run because a sibling worker held it would otherwise count it twice or not at all. Each run's
outcome is the newest record of its identity after those that had ended when the command
started (byol_bench.store.watch.RunWatch, which reads the store whole once, then at each poll
only what changed):
COMPLETED, FAILED, INTERRUPTED (checkpointed: the same command resumes it), RUNNING (held by a
live invocation), or none (queued, or left to another invocation).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import byol_bench
from byol_bench.config import CLAIM_HEARTBEAT_S
from byol_bench.store.claims import holder_state
from byol_bench.plan.grid import RunSpec
from byol_bench.store.watch import RunWatch


def entry_point(*argv: str) -> list[str]:
    """The command that starts a child byol-bench: the installed entry point of this interpreter
    (python -m byol_bench, the `byol-bench` console script's module), never a checkout's script."""
    return [sys.executable, "-m", "byol_bench", *argv]


def checkout_on_path() -> str | None:
    """From a checkout, the folder that holds its byol_bench shim: children put it first on
    PYTHONPATH and so import this same checkout. Installed (a wheel or `pip install -e .`), None:
    the interpreter finds the package by itself."""
    if getattr(byol_bench, "CHECKOUT", None) is None:  # only the checkout's shim defines it
        return None
    return str(Path(byol_bench.__file__).resolve().parents[1])


def child_env(env: dict) -> dict:
    """`env` for a child process that must import the byol_bench this process imported."""
    folder = checkout_on_path()
    if folder is None:
        return dict(env)
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)}


def runs_to_do(specs: list[RunSpec], results_dir: Path, stale_after_s: float,
               heartbeat_s: float = CLAIM_HEARTBEAT_S) -> tuple[list[RunSpec], list[RunSpec]]:
    """(to run, held elsewhere): the runs not completed, split by whether a live invocation
    holds their claim (those are left to it). A claim is watched until its holder shows a sign
    of life (within a heartbeat) or it has been unchanged for stale_after_s (byol_bench.store.claims:
    clocks of two hosts are never compared)."""
    pending = [s for s in specs if not s.done]
    todo, held = [], []
    while pending:
        unknown = []
        for spec in pending:
            state = holder_state(results_dir, spec.config["run_hash"], stale_after_s)
            {"free": todo, "dead": todo, "alive": held}.get(state, unknown).append(spec)
        pending = unknown
        if pending:
            time.sleep(min(heartbeat_s / 4, 1.0))
    order = {id(s): i for i, s in enumerate(specs)}
    return sorted(todo, key=lambda s: order[id(s)]), sorted(held, key=lambda s: order[id(s)])


def watch(specs: list[RunSpec], runs_dir: Path, stale_after_s: float) -> RunWatch:
    """The launched runs' outcomes, polled (`poll()`) while they run: made when the command starts,
    so that records ended before then never count, and those after (this command's, or those of
    the live invocation or queued task a run was left to; a record RUNNING now counts) do."""
    return RunWatch([s.config["run_hash"] for s in specs], runs_dir, stale_after_s)


STATE_WORDS = {"COMPLETED": "done", "FAILED": "failed", "INTERRUPTED": "interrupted", "RUNNING": "running", None: "queued"}


def progress_line(states: dict[str, str | None]) -> str:
    words = [STATE_WORDS.get(s, s.lower() if s else "queued") for s in states.values()]
    order = ["done", "running", "interrupted", "failed", "queued"]
    return ", ".join(f"{words.count(w)} {w}" for w in order + sorted(set(words) - set(order)))


class Progress:
    """Prints a time-stamped line whenever the state of the launched runs changes."""

    def __init__(self, prefix: str):
        self.prefix, self.last = prefix, None

    def show(self, line: str) -> None:
        if line != self.last:
            print(f"{time.strftime('%H:%M:%S')} {self.prefix}: {line}", flush=True)
            self.last = line


def summary_counts(launched: list[RunSpec], skipped: int, held: int, states: dict[str, str | None]) -> dict[str, int]:
    statuses = [states.get(s.config["run_hash"]) for s in launched]
    return {"COMPLETED": statuses.count("COMPLETED"), "FAILED": statuses.count("FAILED"),
            "INTERRUPTED": statuses.count("INTERRUPTED"), "skipped": skipped,
            # RUNNING or no record: another invocation holds it (or a worker died before it)
            "not run": held + sum(s not in ("COMPLETED", "FAILED", "INTERRUPTED") for s in statuses)}


def finish(cfg: dict, results_dir: Path, counts: dict[str, int]) -> Path:
    """Write the leaderboard once, and print the closing line in the inline launcher's words."""
    from byol_bench.report.leaderboard import write_leaderboard

    path = write_leaderboard(results_dir, baseline=cfg["benchmark"]["baseline"],
                             stale_after_s=cfg["run"]["stale_after_s"])
    extra = ""
    if counts["INTERRUPTED"]:
        extra += f", {counts['INTERRUPTED']} interrupted (checkpointed: run the same command to resume)"
    if counts["not run"]:
        extra += f", {counts['not run']} left to the invocation that holds them"
    print(f"{counts['COMPLETED']} completed, {counts['FAILED']} failed, "
          f"{counts['skipped']} skipped (already completed){extra}; wrote {path}", flush=True)
    return path


def warm_cache(specs: list[RunSpec], data_root: Path, cache_dir: Path) -> None:
    """Decode every dataset the runs need (transfer targets included) into the shared cache
    once, before workers or array tasks start: they then memory-map it instead of all decoding
    at once, and missing data fails here, before anything is launched."""
    from byol_bench.data.catalog import get_card
    from byol_bench.data.load import load_from_card
    from byol_bench.evaluation.transfer import transfer_targets

    seen: set[tuple[str, int]] = set()
    for spec in specs:
        size = spec.config["data"]["image_size"]
        names = [spec.dataset]
        if "transfer" in spec.config["protocols"]:
            names += transfer_targets(spec.dataset, spec.config["eval"]["transfer"]["pairs"])
        for name in names:
            if (name, size) not in seen:
                load_from_card(get_card(name), Path(data_root), size, Path(cache_dir), mmap=True)
                seen.add((name, size))
