"""Loader throughput: decoding JPEGs every epoch versus reading the decoded cache.

    python -m benchmarks.loader --n 2000 --size 1024x768 --image-size 224

Writes --n synthetic photo-like JPEGs (--size, quality 90) as an imagefolder in a temporary
folder, then measures images/s over --epochs passes of
  (a) decode: every JPEG decoded and resized to --image-size on a thread pool of --workers
      (our decoder, with libjpeg's reduced-scale decoding), and the same without it
      ("decode_full", what a plain PIL open + resize per image costs);
  (b) cache: the one door `load_from_card` with a cache_dir: one build (timed separately),
      then per epoch a fresh cache hit (fingerprint + .npy read) and a shuffled pass over all
      images in batches of 256 gathered into torch tensors.
Prints one JSON line. The cache files sit in the OS page cache after the build, as they do
for every epoch after the first in a real run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from byol_bench.data.card import DatasetCard
from byol_bench.data.load import load_from_card
from byol_bench.data.images import decode_images, default_workers

CLASSES = 10


def synth_textures(width: int, height: int, count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """A few photo-like float images (smooth colour fields plus grain) to vary per image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for k in range(count):
        fx, fy = rng.uniform(2, 9, 2) * np.pi / width
        base = np.stack([128 + 90 * np.sin(x * fx + k), 128 + 90 * np.cos(y * fy * 1.3 + k),
                         128 + 60 * np.sin((x + y) * fx * 0.7)], axis=-1)
        out.append(base + rng.normal(0, 10, base.shape).astype(np.float32))
    return out


def write_jpegs(root: Path, n: int, width: int, height: int, workers: int) -> list[Path]:
    textures = synth_textures(width, height)
    for c in range(CLASSES):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Path:
        rng = np.random.default_rng(i)
        img = np.roll(textures[i % len(textures)], (int(rng.integers(height)), int(rng.integers(width))), axis=(0, 1))
        img = np.clip(img * rng.uniform(0.7, 1.2, 3).astype(np.float32), 0, 255).astype(np.uint8)
        path = root / f"class_{i % CLASSES}" / f"img_{i:06d}.jpg"
        Image.fromarray(img).save(path, "JPEG", quality=90)
        return path

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def epoch_from_cache(card: DatasetCard, data_root: Path, size: int, cache_dir: Path, batch: int, seed: int) -> int:
    data = load_from_card(card, data_root, size, cache_dir)
    seen = 0
    for split, images in data.images.items():
        order = np.random.default_rng(seed).permutation(len(images))
        for i in range(0, len(order), batch):
            x = torch.from_numpy(images[np.sort(order[i:i + batch])])
            seen += int(x.shape[0])
    return seen


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs")
    parser.add_argument("--size", default="1024x768", help="JPEG size WxH")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_loader-"))
    try:
        t0 = time.perf_counter()
        paths = write_jpegs(work / "data" / "bench", args.n, width, height, args.workers)
        gen_s = time.perf_counter() - t0
        jpeg_mb = sum(p.stat().st_size for p in paths) / 2**20

        def rate(fn) -> float:
            times = []
            for e in range(args.epochs):
                t = time.perf_counter()
                fn(e)
                times.append(time.perf_counter() - t)
            return args.n / float(np.mean(times))

        decode = rate(lambda e: decode_images(paths, args.image_size, 3, workers=args.workers, progress=False))
        decode_full = rate(lambda e: decode_images(paths, args.image_size, 3, workers=args.workers,
                                                   draft=False, progress=False))
        card = DatasetCard(name="bench", loader="imagefolder", root="bench", image_size=args.image_size,
                           channels=3, mean=(0.5,) * 3, std=(0.25,) * 3,
                           splits={"train": 0.8, "val": 0.1, "test": 0.1})
        cache_dir = work / "cache"
        t = time.perf_counter()
        load_from_card(card, work / "data", args.image_size, cache_dir)
        build_s = time.perf_counter() - t
        cached = rate(lambda e: epoch_from_cache(card, work / "data", args.image_size, cache_dir, args.batch, e))
        result = {
            "n": args.n, "source_size": f"{width}x{height}", "image_size": args.image_size,
            "workers": args.workers, "epochs": args.epochs, "cpu_count": os.cpu_count(),
            "jpeg_mb": round(jpeg_mb, 1), "generate_s": round(gen_s, 1),
            "decode_img_per_s": round(decode, 1), "decode_full_img_per_s": round(decode_full, 1),
            "cache_build_s": round(build_s, 2), "cache_img_per_s": round(cached, 1),
            "speedup_vs_decode": round(cached / decode, 1),
        }
        print(json.dumps(result))
        return result
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
