"""The decoded cache: every image decoded and resized once, then read back as uint8 arrays.

Layout, one folder per (card, image size):

    <cache_dir>/<name>-<size>px-<key>/
        meta.json                       key, source fingerprint, classes, splits, skipped files
        <split>.images.npy              uint8 (N, C, S, S)
        <split>.labels.npy              int64 (N,) or float32 (N, L); absent for 'unlabeled'
        <split>.groups.npy              str (N,), where the dataset has groups

`key` hashes the card's content (all but `sources`, which decodes nothing), the image size and
CACHE_VERSION, so editing a card (classes, splits, options...) or the decoder gives a new
folder. The source fingerprint
hashes the name, size and mtime of every file under the dataset's root (or what the format
registers in FINGERPRINTS): when it differs, the folder is rebuilt in place. A folder is
written under a temporary name and renamed when complete, so an interrupted build never
leaves a half cache that looks valid.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from byol_bench.data.card import DatasetCard
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import CorruptImageWarning

CACHE_VERSION = 1  # bump when decoding or resizing changes what a cache holds
log = logging.getLogger(__name__)

# Formats whose sources are not simply "the files under root" register a fingerprint here:
# fn(card, root) -> str, or None when the data is missing (the loader then reports it).
FINGERPRINTS: dict[str, Callable[[DatasetCard, Path], str | None]] = {}


def fingerprint_with(fmt: str):
    """Decorator: `@fingerprint_with("hf")` above fn(card, root) -> str | None."""
    def decorate(fn):
        FINGERPRINTS[fmt] = fn
        return fn
    return decorate


# Card fields that describe the data but do not change what is decoded: not in the cache key,
# so declaring them does not rebuild a cache.
_NOT_IN_KEY = ("sources",)


def cache_key(card: DatasetCard, image_size: int) -> str:
    fields = {k: v for k, v in dataclasses.asdict(card).items() if k not in _NOT_IN_KEY}
    blob = json.dumps({"card": fields, "image_size": image_size,
                       "version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def files_fingerprint(root: Path) -> str | None:
    """Hash of (relative path, size, mtime) of every file under `root` (or of `root` itself)."""
    if not root.exists():
        return None
    h = hashlib.sha256()
    if root.is_file():
        st = root.stat()
        h.update(f"{root.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:  # a dangling link: fingerprint it as absent
                continue
            rows.append(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n")
    for row in sorted(rows):
        h.update(row.encode())
    return h.hexdigest()


def source_fingerprint(card: DatasetCard, root: Path) -> str | None:
    fn = FINGERPRINTS.get(card.loader)
    return fn(card, root) if fn else files_fingerprint(root)


def cache_folder(cache_dir: Path, card: DatasetCard, image_size: int) -> Path:
    return cache_dir / f"{card.name}-{image_size}px-{cache_key(card, image_size)}"


def _built_from(folder: Path) -> str | None:
    try:
        return json.loads((folder / "meta.json").read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def read_cache(folder: Path, card: DatasetCard, fingerprint: str, mmap: bool = False) -> LoadedDataset | None:
    """The cached dataset if `folder` is complete and was built from `fingerprint`; else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") != fingerprint or meta.get("version") != CACHE_VERSION:
        return None
    mode = "r" if mmap else None
    images, labels, groups = {}, {}, {}
    try:
        for split in meta["splits"]:
            images[split] = np.load(folder / f"{split}.images.npy", mmap_mode=mode, allow_pickle=False)
            if (folder / f"{split}.labels.npy").exists():
                labels[split] = np.load(folder / f"{split}.labels.npy", allow_pickle=False)
            if (folder / f"{split}.groups.npy").exists():
                groups[split] = np.load(folder / f"{split}.groups.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if meta.get("skipped"):
        warnings.warn(f"{card.name}: the decoded cache {folder} was built without "
                      f"{len(meta['skipped'])} unreadable image file(s): {', '.join(meta['skipped'][:3])}"
                      f"{' ...' if len(meta['skipped']) > 3 else ''}", CorruptImageWarning, stacklevel=3)
    return LoadedDataset(card=card, images=images, labels=labels, classes=list(meta["classes"]), groups=groups)


def write_cache(folder: Path, data: LoadedDataset, fingerprint: str, skipped: list[str]) -> None:
    """Write `data` to `folder` atomically (temporary folder, then rename)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for split, x in data.images.items():
            np.save(tmp / f"{split}.images.npy", np.ascontiguousarray(x))
            if split in data.labels:
                np.save(tmp / f"{split}.labels.npy", data.labels[split])
            if split in data.groups:
                np.save(tmp / f"{split}.groups.npy", np.asarray(data.groups[split]).astype(str))
        meta = {"version": CACHE_VERSION, "card": data.card.name, "fingerprint": fingerprint,
                "classes": list(data.classes), "splits": list(data.images),
                "sizes": {k: int(len(v)) for k, v in data.images.items()},
                "skipped": skipped, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if folder.exists():
            if _built_from(folder) == fingerprint:  # another process finished the same build first
                shutil.rmtree(tmp)
                return
            shutil.rmtree(folder)  # stale: built from other source files
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "meta.json").exists():  # not another process winning the race
            raise


def cached_load(card: DatasetCard, root: Path, image_size: int, cache_dir: Path,
                loader: Callable[[DatasetCard, Path, int], LoadedDataset], mmap: bool = False) -> LoadedDataset:
    """Read the decoded cache, or build it with `loader` (which reports missing data)."""
    fingerprint = source_fingerprint(card, root)
    if fingerprint is None:  # data missing: let the loader say exactly what and where
        return loader(card, root, image_size)
    folder = cache_folder(cache_dir, card, image_size)
    data = read_cache(folder, card, fingerprint, mmap=mmap)
    if data is not None:
        log.info("%s: decoded cache hit %s", card.name, folder)
        return data
    log.info("%s: building the decoded cache %s", card.name, folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorruptImageWarning)
        data = loader(card, root, image_size)
    skipped: list[str] = []
    for w in caught:  # re-emit everything; remember which files were skipped
        if issubclass(w.category, CorruptImageWarning):
            skipped.extend(getattr(w.message, "files", []))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    data.check(image_size)
    write_cache(folder, data, fingerprint, skipped)
    return read_cache(folder, card, fingerprint, mmap=mmap) if mmap else data


@fingerprint_with("sklearn-digits")
def digits_fingerprint(card: DatasetCard, root: Path) -> str:
    """The embedded digits come from scikit-learn, not from files under the data root. Its
    version from the package metadata: the same string as sklearn.__version__, without the
    2 s import of sklearn at every plan."""
    from importlib.metadata import version
    return f"sklearn-{version('scikit-learn')}"
