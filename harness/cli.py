"""Command line: parse, validate everything up front, hand to the grid runner and leaderboard.

User errors (unknown name, bad value, unreadable file, missing data) print one line and exit 2
before anything is written under --results-dir.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from byol_bench.errors import UserError

EXAMPLES = """examples:
  python run_bench.py                                   # embedded default benchmark (digits)
  python run_bench.py --methods all --datasets isic,stl10
  python run_bench.py --config configs/x.yaml --seeds 6 --set pretrain.epochs=200
  python run_bench.py --methods "byol-nobn-*" --dry-run
  python run_bench.py --leaderboard                     # rebuild tables from results/runs
  accelerate launch run_bench.py ...                    # several GPUs / nodes
  python run_bench.py --launcher local --workers 4      # 4 runs at once (one GPU each, or cores / 4)
  python run_bench.py --launcher slurm --wait           # a SLURM job array (config section slurm:)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run_bench.py", description="Benchmark BYOL variants across datasets and seeds.",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="default",
                   help="a shipped config's name (smoke, stl10-paper, ...: --list shows them) or a YAML file "
                        "(default: %(default)s)")
    p.add_argument("--methods", help='comma list, "all", or wildcards such as "byol-nobn-*"')
    p.add_argument("--datasets", help="comma list of dataset cards (or aliases), or all")
    p.add_argument("--protocols", help="comma list of evaluation protocols, or all")
    p.add_argument("--seeds", help="a count (3 -> seeds 0,1,2) or a comma list (0,5,7)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, dotted and type-checked (repeatable)")
    p.add_argument("--data-root", help="where datasets live (default: data.root, ./data)")
    p.add_argument("--results-dir", default="results", help="runs/, LEADERBOARD.md, figures (default: %(default)s)")
    p.add_argument("--download", action="store_true",
                   help="fetch and verify missing datasets that have a public direct URL, then run")
    p.add_argument("--plugins", metavar="MOD1,MOD2",
                   help="import these modules first (each registers methods, formats, protocols or backbones); "
                        "added to run.plugins, so launched workers import them too")
    p.add_argument("--list", action="store_true", help="list methods, datasets, protocols, backbones")
    p.add_argument("--leaderboard", action="store_true", help="only rebuild the leaderboard from results/runs")
    p.add_argument("--dry-run", action="store_true", help="print the grid, run nothing")
    p.add_argument("--rerun-outdated", action="store_true",
                   help="also re-run completed runs made with other shared pretraining code (training, losses, "
                        "models, augmentation); a method's own code or its data changing re-runs them anyway")
    p.add_argument("--status", action="store_true",
                   help="the grid's state from the store alone: done, evaluating, running, interrupted, failed, queued")
    from byol_bench.launch import LAUNCHERS
    p.add_argument("--launcher", choices=LAUNCHERS, default="inline",
                   help="inline: this process (default); local: --workers N processes on this machine; "
                        "slurm: a submitit job array, resources from the config's slurm section")
    p.add_argument("--workers", type=int, metavar="N", help="--launcher local: runs at once (one GPU each; on CPU the cores divided)")
    p.add_argument("--wait", action="store_true",
                   help="--launcher slurm: wait for the jobs, print progress, then write the leaderboard")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a local launcher's child: no leaderboard
    return p


def _seeds_override(text: str) -> str:
    text = text.strip()
    if text.isdigit():
        return f"benchmark.seeds={int(text)}"
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts or not all(t.isdigit() for t in parts):
        raise UserError(f"--seeds wants a count (e.g. 3) or a comma list of non-negative integers "
                        f"(e.g. 0,1,5), got {text!r}")
    return f"benchmark.seeds=[{','.join(parts)}]"


def _list_overrides(args) -> list[str]:
    out = []
    for flag, key in (("methods", "benchmark.methods"), ("datasets", "benchmark.datasets"),
                      ("protocols", "benchmark.protocols")):
        value = getattr(args, flag)
        if value is not None:
            items = [v.strip() for v in value.split(",") if v.strip()]
            if not items:
                raise UserError(f"--{flag} is empty; give a comma list or 'all'")
            out.append(f"{key}=[{', '.join(repr(i) for i in items)}]")
    if args.seeds is not None:
        out.append(_seeds_override(args.seeds))
    if args.data_root is not None:
        out.append(f"data.root={args.data_root!r}")
    if args.rerun_outdated:
        out.append("run.rerun_outdated=true")
    return out


def config_source(text: str):
    """--config: a YAML file (a path, or a name ending in .yaml), else a shipped config's name."""
    from byol_bench.shipped import shipped, shipped_names
    if Path(text).is_file() or "/" in text or os.sep in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    if text not in shipped_names("configs"):
        raise UserError(f"--config {text}: no such file and no shipped config of that name; "
                        f"shipped configs: {', '.join(shipped_names('configs'))}")
    return shipped("configs") / f"{text}.yaml"


def print_listing() -> None:
    from byol_bench.data import DATASETS, LOADERS
    from byol_bench.evaluation import PROTOCOLS
    from byol_bench.method import METHODS
    from byol_bench.models.backbones import BACKBONES

    for title, reg in (("methods", METHODS), ("datasets", DATASETS), ("protocols", PROTOCOLS),
                       ("backbones", BACKBONES), ("dataset formats", LOADERS)):
        print(f"{title}:")
        unusable = getattr(reg, "unusable", {})  # cards that failed validation: named, with why
        width = max(len(n) for n in [*reg.names(), *unusable, *(["timm/<model>"] if reg is BACKBONES else [])])
        for name in reg.names():
            whose = "" if reg.built_in(name) else f"  (from {reg.origin(name)})"  # a plugin's, or a card folder's
            print(f"  {name:<{width}}  {reg.describe(name)}{whose}")
        if reg is BACKBONES:
            from byol_bench.models.timm_backbone import listing
            print(f"  {'timm/<model>':<{width}}  {listing()}")
        for name, reason in sorted(unusable.items()):
            print(f"  {name:<{width}}  UNUSABLE: {reason}")
    from byol_bench.shipped import shipped, shipped_names
    names = shipped_names("configs")
    print("configs (--config NAME):")
    for name in names:  # each described by its first comment line
        first = (shipped("configs") / f"{name}.yaml").read_text().splitlines()[:1]
        print(f"  {name:<{max(map(len, names))}}  {first[0].lstrip('# ') if first and first[0].startswith('#') else ''}")


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from byol_bench.launch import check_flags
    check_flags(args)
    plugins = [m.strip() for m in (args.plugins or "").split(",") if m.strip()]
    if args.plugins is not None and not plugins:
        raise UserError("--plugins is empty; give a comma list of importable modules")
    from byol_bench.registry import import_plugins
    import_plugins(plugins)  # before anything is looked up
    if args.list:
        print_listing()
        return 0
    from byol_bench.config import load_config

    results_dir = Path(args.results_dir)
    cfg = load_config(config_source(args.config), [*_list_overrides(args), *args.set])
    # Workers (local, SLURM) get this config: the same plugins, and card folders wherever they start.
    cfg["run"]["plugins"] = list(dict.fromkeys([*cfg["run"]["plugins"], *plugins]))
    cfg["data"]["cards_dirs"] = [str(Path(d).expanduser().resolve()) for d in cfg["data"]["cards_dirs"]]
    from byol_bench.store.writable import require_writable
    if args.leaderboard:
        require_writable(results_dir)
        from byol_bench.report.leaderboard import write_leaderboard  # matplotlib and stats: only here
        path = write_leaderboard(results_dir, baseline=cfg["benchmark"]["baseline"],
                                 stale_after_s=cfg["run"]["stale_after_s"])
        print(f"wrote {path}")
        return 0

    from byol_bench.plan.grid import expand_grid
    from byol_bench.store.records import load_runs
    records = load_runs(results_dir / "runs", cfg["run"]["stale_after_s"])  # the store, read once
    specs = expand_grid(cfg, results_dir / "runs", records)
    if args.status:
        print_status(specs, records, results_dir / "runs")
        return 0
    if args.dry_run:
        # skip: completed; evaluate: its encoder is saved, only evaluation runs; pretrain: both.
        for s in specs:
            note = f"  ({s.note})" if s.note else ""
            print(f"{s.action:<8} {s.label}  [{s.config['run_hash']}]{note}")
        actions = [s.action for s in specs]
        print(f"{len(specs)} runs in the grid: {actions.count('pretrain')} to pretrain and evaluate, "
              f"{actions.count('evaluate')} to evaluate from a saved encoder, "
              f"{actions.count('skip')} already completed")
        return 0

    require_writable(results_dir)  # before any download, run or launch writes there
    from byol_bench.run.tracking import check_tracker_installed
    check_tracker_installed(cfg["run"]["log_with"])
    if args.download:
        from byol_bench.data.download import download_dataset
        for name in dict.fromkeys(s.dataset for s in specs if not s.done):
            download_dataset(name, Path(cfg["data"]["root"]))
    if args.launcher != "inline":
        from byol_bench.launch import launch
        return launch(args, cfg, specs, results_dir)

    from accelerate import Accelerator, DataLoaderConfiguration
    from byol_bench.run.grid_runner import run_grid

    # non_blocking: host-to-device batch copies overlap compute (the loader pins memory on CUDA).
    accelerator = Accelerator(mixed_precision=cfg["pretrain"]["mixed_precision"],
                              cpu=not _cuda_available(),
                              dataloader_config=DataLoaderConfiguration(non_blocking=True))
    cache_dir = Path(cfg["data"]["cache_dir"]) if cfg["data"]["cache_dir"] else results_dir / "cache"
    counts = run_grid(specs, accelerator, results_dir, Path(cfg["data"]["root"]), cache_dir,
                      wait_timeout_h=cfg["run"]["wait_timeout_h"],
                      checkpoint_every_min=cfg["run"]["checkpoint_every_min"],
                      stale_after_s=cfg["run"]["stale_after_s"], heartbeat_s=cfg["run"]["heartbeat_s"])
    if accelerator.is_main_process and not args.worker:  # a local launcher writes it once, at the end
        from byol_bench.report.leaderboard import write_leaderboard
        path = write_leaderboard(results_dir, baseline=cfg["benchmark"]["baseline"],
                                 stale_after_s=cfg["run"]["stale_after_s"])
        elsewhere, lost = counts.get("claimed elsewhere", 0), counts.get("INTERRUPTED", 0)
        print(f"{counts['COMPLETED']} completed, {counts['FAILED']} failed, "
              f"{counts['skipped']} skipped (already completed)"
              f"{f', {lost} interrupted (taken over by another invocation)' if lost else ''}"
              f"{f', {elsewhere} left to the invocation that holds them' if elsewhere else ''}; wrote {path}")
    return 0


def print_status(specs, records, runs_dir: Path) -> None:
    """One line per run of the grid, from the store's `records` (load_runs): the newest record of
    its identity decides (done, running with its heartbeat's age, interrupted, failed, outdated:
    completed from other code or data), else queued."""
    from datetime import datetime, timezone
    from byol_bench.store.encoders import encoder_path
    from byol_bench.store.records import last_sign_of_life

    newest = {}
    for record in records:
        newest[record.config.get("run_hash")] = record
    states = []
    for spec in specs:
        record = newest.get(spec.config["run_hash"])
        if spec.done:
            state = "done"
        elif record is None:
            state = "queued" if spec.action == "pretrain" else "queued (evaluate only)"
        elif record.status == "RUNNING":
            seen = last_sign_of_life(record.sacred or {})
            age = (datetime.now(timezone.utc) - seen).total_seconds() if seen else float("nan")
            # Its encoder is saved once pretraining ends: from then on it is evaluating.
            doing = "evaluating" if encoder_path(runs_dir.parent, spec.config["pretrain_hash"]).exists() else "running"
            state = f"{doing} (run {record.run_id}, heartbeat {age:.0f} s ago)"
        elif record.status == "COMPLETED":  # completed, but from other code or data: it runs again
            state = f"outdated (run {record.run_id}: {spec.note or 'out of date'})"
        else:
            state = f"{record.status.lower()} (run {record.run_id}{': ' + record.fail_reason if record.fail_reason else ''})"
        states.append(state.split(" ")[0])
        print(f"{state.split(' (')[0]:<12} {spec.label}  {state[len(state.split(' (')[0]):].strip()}")
    counts = {k: states.count(k) for k in ("done", "evaluating", "running", "interrupted", "failed", "outdated",
                                           "queued")}
    print(", ".join(f"{v} {k}" for k, v in counts.items()))


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from byol_bench.training.preemption import Preempted
        if isinstance(exc, Preempted):  # checkpointed: the same command resumes
            print(f"interrupted: {exc}; run the same command to resume", file=sys.stderr)
            return 128 + exc.signum
        print("interrupted", file=sys.stderr)
        return 130
