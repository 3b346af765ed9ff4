"""One decoded copy of a dataset per machine, shared by every process of a job.

`load_dataset_shared` is what the runner calls. The main process loads the dataset first,
building the decoded cache (byol_bench.data.cache) on a first launch, so only one process
decodes; the others wait, then every process memory-maps the same cache files read-only. The pages live once in the OS page cache and are shared by all processes
(and their DataLoader workers); nothing holds a private copy, and the kernel can drop pages
under memory pressure and read them back. `python -m benchmarks.memory` measures it.

A failure while loading (missing data, a broken cache) is raised on every process with the
same message, so no process is left waiting for one that gave up. Without a cache dir, or
for data the cache cannot fingerprint, each process loads its own copy, as before.
"""
from __future__ import annotations

from pathlib import Path

from byol_bench.data.card import DatasetCard
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.catalog import get_card
from byol_bench.data.load import load_from_card
from byol_bench.errors import UserError


def _agree(failure: BaseException | None) -> None:
    """Every process learns whether some process failed; all raise if one did (a collective
    every process reaches, so it doubles as the barrier)."""
    from accelerate.utils import gather_object

    mine = None if failure is None else (isinstance(failure, UserError), f"{type(failure).__name__}: {failure}",
                                          str(failure))
    failures = [(rank, f) for rank, f in enumerate(gather_object([mine])) if f is not None]
    if failure is not None:
        raise failure
    if failures:
        rank, (user_error, described, message) = failures[0]
        if user_error:
            raise UserError(message)
        raise RuntimeError(f"loading the dataset failed on process {rank}: {described}")


def load_dataset_shared(dataset: str | DatasetCard, data_root: Path, image_size: int | None,
                        cache_dir: Path | None, accelerator) -> LoadedDataset:
    """`load_dataset` for a job of `accelerator.num_processes` processes, every one calling it
    with the same arguments: the main process builds (or checks) the cache, then every process
    memory-maps it. `dataset` is a card name (or alias) or a card. One process, or no
    `cache_dir`: a plain load (memory-mapped when cached)."""
    card = dataset if isinstance(dataset, DatasetCard) else get_card(dataset)
    mmap = cache_dir is not None

    def load() -> LoadedDataset:
        return load_from_card(card, data_root, image_size, cache_dir, mmap=mmap)

    if accelerator.num_processes == 1 or cache_dir is None:
        return load()
    # Three turns, each closed by a collective: the main process (decodes and writes the cache),
    # then the first process of every other machine (a cache hit on a shared filesystem, one
    # build per machine otherwise), then everyone else (cache hits).
    first = accelerator.is_main_process
    node_first = accelerator.is_local_main_process and not first
    data = None
    for my_turn in (first, node_first, not (first or node_first)):
        failure = None
        if my_turn:
            try:
                data = load()
            except Exception as exc:  # noqa: BLE001 - raised on every process by _agree
                failure = exc
        _agree(failure)
    return data
