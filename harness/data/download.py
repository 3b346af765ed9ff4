"""`--download`: fetch a dataset's public files from its card, verify their checksums, unpack.

A card's `download.files` is a list of entries:
    url:      the public direct URL (http:// or https:// only)
    md5 / sha256: the expected checksum (required: nothing unverified is ever unpacked)
    filename: name to save under (default: the URL's last path segment); a plain file name
    dest:     folder relative to --data-root to save/unpack into (default: the data root); no
              absolute path, no '..': nothing a card names is written outside the data root
    unpack:   extract the archive there (default: true for .zip/.tar/.tar.gz/.tgz)
    keep:     keep the archive after unpacking (default: false)
Datasets behind a login or a licence form (ChestX-ray14 on Box, Kaggle's pneumonia) have no
files here; their error message says how to get them by hand.
"""
from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

from byol_bench.data.card import DOWNLOAD_ENTRY_KEYS, DatasetCard, card_file, inside_path_problem
from byol_bench.data.catalog import get_card
from byol_bench.errors import UserError

ENTRY_KEYS = set(DOWNLOAD_ENTRY_KEYS)
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")
CHUNK = 1 << 20


def download_dataset(name: str, data_root: Path, *, force: bool = False, progress: bool = True) -> Path:
    """Fetch, verify and unpack dataset `name` under `data_root`; returns the dataset's path.

    Does nothing when the dataset's path already exists (unless `force`), or when there is
    nothing on disk to fetch (the embedded digits, a hub id). A missing dataset without a
    direct download is a UserError that says how to get it by hand.
    """
    return download_card(get_card(name), Path(data_root), force=force, progress=progress)


def download_card(card: DatasetCard, data_root: Path, *, force: bool = False, progress: bool = True) -> Path:
    """`download_dataset` for a card object."""
    card.check(card_file(card))  # http(s) only, every path inside the data root
    target = data_root / card.root
    entries = card.download.get("files") or []
    if card.root and target.exists() and not force:
        return target  # present: nothing to do
    if not entries:
        if not card.root:
            return target  # nothing on disk to fetch: embedded (digits) or a hub id (fetched by its library)
        how = " ".join(str(card.download.get("instructions", "see the dataset's card")).split())
        raise UserError(f"dataset {card.name!r} is not at {target} and has no direct download (login or "
                        f"licence needed). Get it from {card.download.get('source', 'its official page')}: {how}")
    for entry in entries:
        fetch(card, entry, data_root, progress=progress)
    return target


def _checksum(card: DatasetCard, entry: dict[str, Any]) -> tuple[str, str]:
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown or "url" not in entry:
        raise UserError(f"dataset card {card.name}: download entry {entry} needs a url and accepts "
                        f"only {', '.join(sorted(ENTRY_KEYS))}")
    for algo in ("sha256", "md5"):
        if entry.get(algo):
            return algo, str(entry[algo]).lower()
    raise UserError(f"dataset card {card.name}: download entry for {entry['url']} has no md5 or sha256; "
                    f"refusing to fetch unverified data")


def fetch(card: DatasetCard, entry: dict[str, Any], data_root: Path, progress: bool = True) -> Path:
    """Download one entry to data_root/dest, verify it, unpack it if it is an archive."""
    algo, expected = _checksum(card, entry)
    url = entry["url"]
    if urllib.parse.urlparse(url).scheme.lower() not in ("http", "https"):
        raise UserError(f"dataset card {card_file(card)}: download url must be http:// or https://, got {url!r}")
    filename = entry.get("filename") or Path(urllib.parse.urlparse(url).path).name
    problem = inside_path_problem(str(Path(entry.get("dest", "")) / filename))
    if problem or not filename:
        raise UserError(f"dataset card {card_file(card)}: download dest/filename {problem or 'names no file'}")
    dest = data_root / entry.get("dest", "")
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / filename
    unpack = entry.get("unpack", filename.lower().endswith(ARCHIVES))

    if not (path.exists() and file_digest(path, algo) == expected):
        part = path.with_name(path.name + ".part")
        digest = hashlib.new(algo)
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out, \
                    tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B",
                         unit_scale=True, desc=f"downloading {filename}", disable=not progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            part.unlink(missing_ok=True)
            raise UserError(f"dataset {card.name!r}: cannot download {url}: {exc}") from None
        if digest.hexdigest() != expected:
            part.unlink(missing_ok=True)
            raise UserError(f"dataset {card.name!r}: {url} failed its {algo} check (expected {expected}, "
                            f"got {digest.hexdigest()}); nothing was kept. Retry, or download it by hand.")
        part.replace(path)

    if unpack:
        extract(card, path, dest)
        if not entry.get("keep", False):
            path.unlink()
    return dest


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def extract(card: DatasetCard, archive: Path, dest: Path) -> None:
    """Unpack a zip or tar archive into `dest`, refusing members that would land outside it."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                root = dest.resolve()
                for member in z.namelist():
                    if not (dest / member).resolve().is_relative_to(root):
                        raise UserError(f"dataset {card.name!r}: {archive} has an unsafe member {member!r}")
                z.extractall(dest)
        else:
            with tarfile.open(archive) as t:
                try:  # the data filter rejects absolute paths, '..', links leaving dest, device files
                    t.extractall(dest, filter="data")
                except tarfile.FilterError as exc:
                    raise UserError(f"dataset {card.name!r}: {archive} has an unsafe member: {exc}; "
                                    f"nothing outside {dest} was written") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"dataset {card.name!r}: cannot unpack {archive}: {exc}") from None


__all__ = ["download_dataset", "download_card"]
