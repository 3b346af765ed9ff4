"""Decoding image files and arrays into the uint8 (N, C, S, S) arrays every loader returns.

One geometry for all formats: resize so the shorter side is S, center-crop to S x S (a square
source is plainly resized), bilinear with Pillow's antialiasing. One colour rule: 1 channel =
PIL's "L" (ITU-R 601-2 luma); 3 channels = RGB (grey replicated, alpha dropped, CMYK and
palette converted by PIL); 16-bit greyscale scaled to 8 bits.

JPEGs are decoded at a reduced DCT scale when that still leaves at least S pixels on each
side (Pillow's `draft`): the same result at a fraction of the cost for large photographs.
Decoding runs on a thread pool (Pillow releases the GIL while decoding and resampling).
"""
from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# What a broken file raises inside Pillow: truncated data, unknown format, bad header.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError)


class CorruptImageWarning(UserWarning):
    """Unreadable image files were skipped; the message counts and names them."""


def _open(source: Any) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(source))
    return Image.open(source)


def to_mode(im: Image.Image, channels: int) -> Image.Image:
    """`im` as "L" (channels=1) or "RGB" (channels=3), by the module's colour rule."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale (some X-ray PNGs): scale 0..65535 to 0..255; PIL's convert clips.
        arr = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), "L")
    elif im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    target = "L" if channels == 1 else "RGB"
    return im if im.mode == target else im.convert(target)


def resize_square(im: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size`, center crop: one resample with a crop box."""
    w, h = im.size
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    return im.resize((size, size), Image.BILINEAR, box=box)


def decode_image(source: Any, size: int, channels: int, draft: bool = True) -> np.ndarray:
    """One image (path, bytes or PIL image) as uint8 (channels, size, size)."""
    im = _open(source)
    try:
        if draft and im.format == "JPEG":
            im.draft("L" if channels == 1 else im.mode, (size, size))
        out = resize_square(to_mode(im, channels), size)
        arr = np.asarray(out, dtype=np.uint8)
    finally:
        if not isinstance(source, Image.Image):
            im.close()
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def default_workers() -> int:
    return max(1, min(32, os.cpu_count() or 1))


def decode_images(sources: Sequence[Any], size: int, channels: int, *, desc: str = "decoding",
                  workers: int | None = None, draft: bool = True,
                  progress: bool = True) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode `sources` in parallel into uint8 (N, channels, size, size).

    Returns (images, failed indices, failure reasons). Rows of failed images are zero; the
    caller drops them (see `drop_failed`). `sources` may be any sequence whose items
    `decode_image` accepts (paths, bytes, PIL images).
    """
    n = len(sources)
    out = np.zeros((n, channels, size, size), dtype=np.uint8)
    failed: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            out[i] = decode_image(sources[i], size, channels, draft=draft)
        except _DECODE_ERRORS as exc:
            failed[i] = f"{type(exc).__name__}: {exc}"

    workers = workers or default_workers()
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=n, desc=desc, unit="img", disable=not progress or n == 0, leave=False) as bar:
        for _ in pool.map(work, range(n)):
            bar.update()
    idx = sorted(failed)
    return out, idx, [failed[i] for i in idx]


def warn_skipped(dataset: str, names: Sequence[str], reasons: Sequence[str] = ()) -> None:
    """The one warning for unreadable files: how many, and the first few by name."""
    if not names:
        return
    shown = ", ".join(f"{n} ({r})" if r else str(n) for n, r in zip(names[:3], list(reasons[:3]) + [""] * 3))
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    warning = CorruptImageWarning(f"{dataset}: skipped {len(names)} unreadable image file(s): {shown}{more}")
    warning.files = [str(n) for n in names]  # the decoded cache records them (and re-warns on reuse)
    warnings.warn(warning, stacklevel=3)


def decode_files(dataset: str, paths: Sequence[Path | str], size: int, channels: int,
                 **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Decode files; skip (with one warning) those that fail. Returns (images, kept indices)."""
    images, failed, reasons = decode_images(paths, size, channels, desc=f"decoding {dataset}", **kwargs)
    warn_skipped(dataset, [str(paths[i]) for i in failed], reasons)
    keep = np.setdiff1d(np.arange(len(paths)), np.asarray(failed, dtype=np.int64))
    return (images[keep] if failed else images), keep


def array_to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (N, C, H, W) with C in {1, 3} to `channels`, by the module's colour rule: the one
    uint8 luma of the harness (decoding, array formats, transfer targets), PIL's "L" exactly. The
    float grey of the augmentation (byol_bench.training.augment.grayscale) keeps torchvision's
    weights instead, so the batched backend matches the v2 one."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return np.repeat(x, 3, axis=1)
    if c == 3 and channels == 1:
        # PIL's "L": L = (R*299 + G*587 + B*114) / 1000, rounded.
        w = np.array([299, 587, 114], dtype=np.uint32).reshape(1, 3, 1, 1)
        return (((x.astype(np.uint32) * w).sum(axis=1, keepdims=True) + 500) // 1000).astype(np.uint8)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def resize_array(x: np.ndarray, size: int, chunk: int = 2048) -> np.ndarray:
    """uint8 (N, C, H, W) to (N, C, size, size): shorter side to size, center crop; bilinear, antialiased."""
    n, c, h, w = x.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    if s == size:
        return np.ascontiguousarray(x[:, :, top:top + s, left:left + s])
    out = np.empty((n, c, size, size), dtype=np.uint8)
    for i in range(0, n, chunk):
        part = torch.from_numpy(np.ascontiguousarray(x[i:i + chunk, :, top:top + s, left:left + s])).float()
        part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[i:i + chunk] = part.round().clamp(0, 255).to(torch.uint8).numpy()
    return out
