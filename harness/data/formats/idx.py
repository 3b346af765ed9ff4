"""The MNIST family's IDX files (LeCun et al.): MNIST, Fashion-MNIST, KMNIST share the format.

Layout under the data root, as the official files download (gzip or already gunzipped):
    <root>/train-images-idx3-ubyte[.gz]   <root>/train-labels-idx1-ubyte[.gz]
    <root>/t10k-images-idx3-ubyte[.gz]    <root>/t10k-labels-idx1-ubyte[.gz]
An IDX file is a big-endian header, then the data: bytes 0-1 are zero, byte 2 the element type
(0x08: unsigned byte), byte 3 the number of dimensions, then one int32 per dimension. So the
magic number, read as an int32, is 2051 for images (ubyte, 3 dims: N x rows x cols) and 2049
for labels (ubyte, 1 dim: N). The loader checks both magics, that the file is exactly as long
as its header says (a truncated download is refused), and that images and labels agree in count.
Each problem is one UserError line naming the file.

Splits: train/val carved (stratified, the card's split seed) from the official training file;
test = the official t10k file. Card options: `prefixes` (file-name prefix per split, default
train / t10k) and `fallback_dirs`: folders tried, in order, when the data root does not hold
the files (Debian's `dataset-fashion-mnist` installs them under /usr/share/datasets/fashion-mnist).
A fallback folder must lie under SYSTEM_DATASET_DIRS (where distributions install dataset
packages, fixed here): a card can point at a packaged dataset, never at any folder it likes.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

from byol_bench.data.cache import fingerprint_with
from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard, card_file, card_options, missing_data_error
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import array_to_channels, resize_array
from byol_bench.data.splits import carve_pool
from byol_bench.errors import UserError

IMAGES_MAGIC = 2051   # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049   # 0x00000801: unsigned bytes, 1 dimension
DEFAULT_OPTIONS = {"prefixes": {"train": "train", "test": "t10k"}, "fallback_dirs": []}
SYSTEM_DATASET_DIRS = ("/usr/share/datasets",)  # Debian's dataset-* packages install here


def _in_system_dataset_dir(folder) -> bool:
    plain = os.path.normpath(folder) if isinstance(folder, str) else ""
    return any(plain == d or plain.startswith(d + "/") for d in SYSTEM_DATASET_DIRS)


def idx_options(card: DatasetCard) -> dict:
    """The card's options, its prefixes inside the data root and its fallback folders under
    SYSTEM_DATASET_DIRS (UserError naming the card file and option otherwise)."""
    opts = card_options(card, DEFAULT_OPTIONS, paths=("prefixes",))
    folders = opts["fallback_dirs"]
    if not (isinstance(folders, list) and all(map(_in_system_dataset_dir, folders))):
        raise UserError(f"dataset card {card_file(card)}: options.fallback_dirs must be a list of folders under "
                        f"{', '.join(SYSTEM_DATASET_DIRS)} (installed dataset packages), got {folders!r}")
    return opts


def read_idx(path: Path, magic: int, what: str = "IDX") -> np.ndarray:
    """One IDX file (gzip or plain) as a uint8 array of the shape its header gives, after
    checking the magic number and that the data is exactly as long as the header says."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    if len(raw) < 4:
        raise UserError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise UserError(f"{path}: magic number {found}, expected {magic} for an IDX {what} file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX file ({len(raw)} bytes, header needs {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise UserError(f"{path}: {problem}: {len(raw)} bytes, the header {'x'.join(map(str, dims))} "
                        f"needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()  # writable


def idx_file(folder: Path, prefix: str, kind: str) -> Path | None:
    """`<prefix>-images-idx3-ubyte[.gz]` or `<prefix>-labels-idx1-ubyte[.gz]` in `folder`
    (gzip first, then plain; also the `<prefix>-images.idx3-ubyte` spelling some mirrors use)."""
    stem = f"{prefix}-images-idx3-ubyte" if kind == "images" else f"{prefix}-labels-idx1-ubyte"
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def find_idx_folder(card: DatasetCard, root: Path) -> Path | None:
    """`root` if it holds every file, else the first of the card's fallback_dirs that does."""
    opts = idx_options(card)
    for folder in (root, *map(Path, opts["fallback_dirs"])):
        if all(idx_file(folder, p, k) for p in opts["prefixes"].values() for k in ("images", "labels")):
            return folder
    return None


def read_split(card: DatasetCard, folder: Path, prefix: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, card.channels, size, size) and int64 labels of one official split."""
    images_path, labels_path = idx_file(folder, prefix, "images"), idx_file(folder, prefix, "labels")
    x = read_idx(images_path, IMAGES_MAGIC, "images")
    y = read_idx(labels_path, LABELS_MAGIC, "labels").astype(np.int64)
    if x.ndim != 3 or y.ndim != 1:
        raise UserError(f"{images_path}: expected N x rows x cols images and N labels, got {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise UserError(f"{labels_path}: {len(y)} labels for the {len(x)} images of {images_path.name}")
    if len(y) and (y.min() < 0 or y.max() >= len(card.classes)):
        raise UserError(f"{labels_path}: labels span {y.min()}..{y.max()}, the card has {len(card.classes)} classes")
    return resize_array(array_to_channels(np.ascontiguousarray(x[:, None]), card.channels), size), y


@LOADERS.register("idx")
def load_idx(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """MNIST-family IDX files: train/val carved from the official train file, official test."""
    opts = idx_options(card)
    folder = find_idx_folder(card, root)
    if folder is None:
        tried = ", ".join(str(p) for p in (root, *opts["fallback_dirs"]))
        raise missing_data_error(card, root, f"the IDX files ({opts['prefixes']['train']}-images-idx3-ubyte"
                                             f"[.gz] and the rest) not found in {tried}")
    train_x, train_y = read_split(card, folder, opts["prefixes"]["train"], image_size)
    test_x, test_y = read_split(card, folder, opts["prefixes"]["test"], image_size)
    parts = carve_pool(train_y, card.split_fractions(), card.split_seed)
    data = LoadedDataset.from_indices(card, list(card.classes), train_x, train_y, parts)
    data.add_split("test", test_x, test_y)
    return data


@fingerprint_with("idx")
def idx_fingerprint(card: DatasetCard, root: Path) -> str | None:
    """Name, size and mtime of the four files in the folder the loader will read (the data root
    or a fallback), so the decoded cache follows whichever copy is used."""
    folder = find_idx_folder(card, root)
    if folder is None:
        return None
    opts = idx_options(card)
    h = hashlib.sha256(str(folder.resolve()).encode())
    for prefix in opts["prefixes"].values():
        for kind in ("images", "labels"):
            path = idx_file(folder, prefix, kind)
            st = path.stat()
            h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
