"""Resident memory per process when several processes read one dataset of STL10's size.

    python -m benchmarks.memory                      # 2 processes, STL10's size (3.1 GB cache)
    python -m benchmarks.memory --nproc 2 --unlabeled 100000 --tmp /tmp --mode copy

Writes a synthetic dataset in the decoded-cache layout (harness/data/cache.py), split as the
STL10 card splits it (4,500 train, 500 val, 8,000 test, 100,000 unlabeled images of 3 x 96 x 96
uint8, random), into a temporary folder (deleted afterwards unless --keep). Then launches
--nproc processes with torchrun (gloo, CPU); each opens the dataset the way the runner does
(`load_dataset_shared`), touches every page of every split (a sum in chunks), then iterates
--batches batches of the pretraining loader (`byol_bench.training.loop.make_loader`, BYOL, batch 256
over all processes, so every process draws from all 104,500 train + unlabeled images). Each
process reports, through psutil (the kernel's /proc/self/smaps_rollup and /proc/self/smaps),
after the imports, after loading, after touching and after the loader: Rss, Pss, Shared_Clean,
USS (Private_Clean + Private_Dirty), Anonymous, the part of Rss that maps the cache files, and
its peak (VmHWM).

`--mode copy` measures what the runner did before: every process reads the arrays into its
own memory (np.load without mmap) and pretrains from np.concatenate(train, unlabeled).
Prints one markdown table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from byol_bench.data.card import DatasetCard
from byol_bench.errors import UserError

SIDE, CHANNELS, CLASSES = 96, 3, 10


def synthetic_card() -> DatasetCard:
    """STL10's card (splits, size, channels), renamed: its cache is written here, never decoded."""
    return DatasetCard(name="synthetic-stl10", loader="stl10-binary", root="synthetic-stl10",
                       image_size=SIDE, channels=CHANNELS, mean=(0.43, 0.42, 0.39), std=(0.27, 0.26, 0.27),
                       classes=tuple(f"c{i}" for i in range(CLASSES)),
                       splits={"train": 0.9, "val": 0.1, "test": "official", "unlabeled": "official"})


def write_synthetic_cache(tmp: Path, sizes: dict[str, int], chunk: int = 2048) -> tuple[Path, Path, Path]:
    """The cache folder a first run would have built, written in chunks (the writer never holds
    a split in memory). Returns (data_root, cache_dir, cache folder)."""
    from byol_bench.data.cache import CACHE_VERSION, cache_folder, source_fingerprint

    card = synthetic_card()
    data_root, cache_dir = tmp / "data", tmp / "cache"
    (data_root / card.root).mkdir(parents=True)
    (data_root / card.root / "README").write_text("synthetic; the decoded cache next door is the data\n")
    folder = cache_folder(cache_dir, card, SIDE)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in sizes.items():
        x = np.lib.format.open_memmap(folder / f"{split}.images.npy", mode="w+", dtype=np.uint8,
                                      shape=(n, CHANNELS, SIDE, SIDE))
        for i in range(0, n, chunk):
            x[i:i + chunk] = rng.integers(0, 256, (min(chunk, n - i), CHANNELS, SIDE, SIDE), dtype=np.uint8)
        x.flush()
        del x
        if split != "unlabeled":
            np.save(folder / f"{split}.labels.npy", (np.arange(n) % CLASSES).astype(np.int64))
    meta = {"version": CACHE_VERSION, "card": card.name, "fingerprint": source_fingerprint(card, data_root / card.root),
            "classes": list(card.classes), "splits": list(sizes), "sizes": sizes, "skipped": [],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return data_root, cache_dir, folder


# ----------------------------------------------------------------------------- in each process

def memory(cache_folder: Path) -> dict[str, float]:
    """MiB: this process's Rss, Pss, USS (private), Shared_Clean, Shared_Dirty and Anonymous, the
    part mapping files under `cache_folder`, and its peak Rss (VmHWM). psutil reads the kernel's
    figures: Pss and USS from /proc/self/smaps_rollup (`memory_full_info`; the per-mapping sums
    would round Pss down by up to 1 KiB a mapping), the rest per mapped file from /proc/self/smaps
    (`memory_maps`, whose sums of whole pages are exact)."""
    import psutil

    proc = psutil.Process()
    maps = proc.memory_maps(grouped=True)
    full = proc.memory_full_info()
    mib = 2 ** 20
    out = {"Pss": full.pss / mib, "USS": full.uss / mib}
    for field in ("Rss", "Shared_Clean", "Shared_Dirty", "Anonymous"):
        out[field] = sum(getattr(m, field.lower()) for m in maps) / mib
    prefix = str(cache_folder)
    in_cache = [m for m in maps if m.path.startswith(prefix)]
    for field in ("Rss", "Pss", "Shared_Clean", "Private_Clean", "Private_Dirty"):
        out[f"cache_{field}"] = sum(getattr(m, field.lower()) for m in in_cache) / mib
    # psutil has no peak Rss on Linux: the kernel's high-water mark from /proc/self/status.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            out["peak_Rss"] = int(line.split()[1]) / 1024
    return out


def touch_every_page(images, chunk: int = 2048) -> int:
    """Sum of all bytes, read in chunks (numpy's buffered sum: no copy of the array)."""
    return int(sum(int(images[i:i + chunk].sum(dtype=np.uint64)) for i in range(0, len(images), chunk)))


def worker(tmp: Path, mode: str, batches: int) -> None:
    import torch
    from accelerate import Accelerator

    from benchmarks.step import build_method
    from byol_bench.config import load_config
    from byol_bench.data.cache import cache_folder
    from byol_bench.data.load import load_from_card
    from byol_bench.data.shared import load_dataset_shared
    from byol_bench.training.augment import ViewDataset
    from byol_bench.training.loader import make_loader, monitoring_labels

    from byol_bench.data import LOADERS

    torch.set_num_threads(1)
    LOADERS.names()  # the format modules import on first lookup: before the "imported" snapshot
    card = synthetic_card()
    folder = cache_folder(tmp / "cache", card, SIDE)
    acc = Accelerator(cpu=True)
    report = {"rank": acc.process_index, "mode": mode, "imported": memory(folder)}
    start = time.perf_counter()
    if mode == "mmap":   # the runner's door
        data = load_dataset_shared(card, tmp / "data", SIDE, tmp / "cache", acc)
    else:                # the old runner: every process reads its own copy
        data = load_from_card(card, tmp / "data", SIDE, tmp / "cache", mmap=False)
    acc.wait_for_everyone()
    report["load_s"] = time.perf_counter() - start
    report["loaded"] = memory(folder)
    start = time.perf_counter()
    report["bytes_summed"] = {k: touch_every_page(v) for k, v in data.images.items()}
    report["touch_s"] = time.perf_counter() - start
    acc.wait_for_everyone()
    report["touched"] = memory(folder)

    cfg = load_config(None, ["backbone.width=4", "byol.proj_hidden=16", "byol.pred_hidden=16",
                             "byol.proj_dim=8", "pretrain.batch_size=256"])
    method = build_method("byol", cfg, channels=CHANNELS)
    if mode == "mmap":
        loader = make_loader(method, data, cfg, acc, seed=acc.process_index)
    else:   # the old make_loader: np.concatenate(train, unlabeled) per run, wrapped by torch
        full = torch.from_numpy(np.concatenate([data.images["train"], data.images["unlabeled"]]))
        loader = torch.utils.data.DataLoader(ViewDataset(full, [], monitoring_labels(data)), shuffle=True,
                                             batch_size=256 // acc.num_processes, drop_last=True)
    report["pretrain_images"] = len(loader.dataset)
    start, seen = time.perf_counter(), 0
    for step, (images, _) in enumerate(loader):
        seen += len(images)
        if step + 1 >= batches:
            break
    report["loader_img_per_s"] = seen / (time.perf_counter() - start)
    report["loader_images"] = seen
    acc.wait_for_everyone()
    report["after_loader"] = memory(folder)
    (tmp / "out").mkdir(exist_ok=True)
    (tmp / "out" / f"rank{acc.process_index}.json").write_text(json.dumps(report))
    acc.wait_for_everyone()


# ----------------------------------------------------------------------------- parent

def table(reports: list[dict]) -> str:
    rows = ["| process | stage | Rss | Pss | Shared_Clean | Private (clean + dirty) | Anonymous | cache files: Rss / Pss | peak Rss |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        for stage in ("imported", "loaded", "touched", "after_loader"):
            m = r[stage]
            rows.append(f"| {r['rank']} | {stage} | {m['Rss']:.0f} | {m['Pss']:.0f} | {m['Shared_Clean']:.0f} | "
                        f"{m['USS']:.0f} | {m['Anonymous']:.0f} | {m['cache_Rss']:.0f} / {m['cache_Pss']:.0f} | "
                        f"{m['peak_Rss']:.0f} |")
    return "\n".join(rows) + "\n(MiB)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--train", type=int, default=4500)
    p.add_argument("--val", type=int, default=500)
    p.add_argument("--test", type=int, default=8000)
    p.add_argument("--unlabeled", type=int, default=100000)
    p.add_argument("--batches", type=int, default=100, help="pretraining batches per process")
    p.add_argument("--mode", choices=("mmap", "copy"), default="mmap")
    p.add_argument("--tmp", default=tempfile.gettempdir(), help="parent of the temporary folder (local disk)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(Path(args.worker), args.mode, args.batches)
        return 0
    sizes = {"train": args.train, "val": args.val, "test": args.test, "unlabeled": args.unlabeled}
    need = sum(sizes.values()) * CHANNELS * SIDE * SIDE
    free = shutil.disk_usage(args.tmp).free
    if free < 1.2 * need:
        raise UserError(f"--tmp {args.tmp}: {free / 2**30:.1f} GiB free, the synthetic cache needs {need / 2**30:.1f} GiB")
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.tmp))
    try:
        start = time.perf_counter()
        write_synthetic_cache(tmp, sizes)
        written_s = time.perf_counter() - start
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
               "-m", "benchmarks.memory", "--worker", str(tmp), "--mode", args.mode, "--batches", str(args.batches)]
        env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise RuntimeError(f"the worker processes failed (exit {proc.returncode})")
        reports = [json.loads((tmp / "out" / f"rank{r}.json").read_text()) for r in range(args.nproc)]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    sums = {json.dumps(r["bytes_summed"], sort_keys=True) for r in reports}
    assert len(sums) == 1, "processes read different bytes"
    summary = {"mode": args.mode, "nproc": args.nproc, "sizes": sizes, "cache_gib": need / 2**30,
               "write_s": written_s, "pretrain_images": reports[0]["pretrain_images"],
               "per_process": [{k: r[k] for k in ("rank", "load_s", "touch_s", "loader_img_per_s", "loader_images")}
                               | {f"{stage}_{f}": round(r[stage][f], 1) for stage in ("imported", "touched", "after_loader")
                                  for f in ("Rss", "Pss", "Shared_Clean", "Anonymous", "cache_Rss", "cache_Pss", "peak_Rss")}
                               for r in reports]}
    print(f"{args.mode}: {args.nproc} processes, {sum(sizes.values())} images ({need / 2**30:.2f} GiB), "
          f"pretraining over {summary['pretrain_images']} (train + unlabeled)")
    print(table(reports))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
