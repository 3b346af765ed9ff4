"""The one door to a dataset: `load_dataset` by card name, `load_from_card` for a card object."""
from __future__ import annotations

from pathlib import Path

from byol_bench.data.cache import cached_load
from byol_bench.data.card import DatasetCard
from byol_bench.data.catalog import LOADERS, get_card
from byol_bench.data.dataset import LoadedDataset


def load_dataset(name: str, data_root: Path, image_size: int | None = None,
                 cache_dir: Path | None = None, *, mmap: bool = False) -> LoadedDataset:
    """Load a dataset by card name (or alias) at `image_size` (default: the card's).

    With `cache_dir`, the decoded arrays are kept there (see byol_bench.data.cache) and reused
    until the card, the size or the source files change; `mmap` then maps them read-only
    instead of reading them into memory.
    """
    return load_from_card(get_card(name), data_root, image_size, cache_dir, mmap=mmap)


def load_from_card(card: DatasetCard, data_root: Path, image_size: int | None = None,
                   cache_dir: Path | None = None, *, mmap: bool = False) -> LoadedDataset:
    """`load_dataset` for a card object (one not in datasets/, e.g. built by a benchmark)."""
    card.check(card.name)
    size = int(image_size or card.image_size)
    root = Path(data_root) / card.root
    loader = LOADERS.get(card.loader)
    if cache_dir is None:
        data = loader(card, root, size)
    else:
        data = cached_load(card, root, size, Path(cache_dir), loader, mmap=mmap)
    data.check(size)
    return data
