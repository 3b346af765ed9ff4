"""Pretraining checkpoints: everything an exact continuation needs, written atomically.

    <results>/checkpoints/<pretrain_hash>/ckpt-<step>.pt

One file per checkpoint, named by the optimisation step it continues from. Each is written to
a temporary file, fsynced and renamed (a half-written file is never read, also on NFS), and
read with `torch.load(weights_only=True)` (tensors, numbers, strings, lists and dicts only: it
cannot run code; ours, not accelerate's save_state/load_state, whose load_custom_state unpickles
with weights_only=False). The newest readable one is resumed from; one whose content is bad (truncated,
corrupt, not a checkpoint) is renamed `*.corrupt`, reported in one line, and the next older one
is tried (or the run starts from scratch). One that cannot be read for a reason outside the file
(permissions, a transient EIO or ESTALE, memory) is left in place and the run fails in one line
(`CheckpointUnreadable`): the next command resumes from it, where setting it aside would throw
away the training it holds, and starting afresh would hide the problem. The two newest are kept
while the run trains; all are removed once its encoder is saved.

What a checkpoint holds: once, what every process shares: the online and target networks, the
optimizer and GradScaler states, the epoch and the batch within it, the step count, the epoch
losses and the curves logged so far; and under "processes", a list indexed by process index,
what each process has of its own (byol_bench.training.checkpointing): every random stream (torch's
global CPU and CUDA generators, the batched augmentation's generators, the loader's shuffling
generator as it was when the epoch began), the method's running sums and the epoch's partial
loss sums. The main process gathers them and writes the file; each process resumes its own
entry. A checkpoint from before this list holds the main process's entry at the top level
("rng", "method", "partial") and still resumes with one process. On CPU a resumed run ends
bit-identical to an uninterrupted one, with one process and with two (tested).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from byol_bench.store.atomic_io import atomic_torch_save

CHECKPOINTS = "checkpoints"
KEEP = 2


def checkpoint_dir(results_dir: Path, pretrain_hash: str) -> Path:
    return Path(results_dir) / CHECKPOINTS / pretrain_hash


def write_checkpoint(folder: Path, state: dict) -> Path:
    """Atomically write `state` as ckpt-<step>.pt; keep the KEEP newest."""
    path = atomic_torch_save(folder / f"ckpt-{int(state['step']):09d}.pt", state)
    for old in sorted(folder.glob("ckpt-*.pt"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


class CheckpointUnreadable(RuntimeError):
    """A checkpoint could not be read for a reason outside its content; it is kept."""


def _unreadable(path: Path, exc: BaseException) -> CheckpointUnreadable:
    return CheckpointUnreadable(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); "
                                "left in place: run the same command again to resume from it")


def _read_state(path: Path) -> dict:
    """The checkpoint's state. CheckpointUnreadable when the file cannot be read or memory runs
    out (the file may be fine); any other exception means its content is bad."""
    try:  # read first: an OSError here is the filesystem's, one from torch.load the content's
        blob = path.read_bytes()
    except (OSError, MemoryError) as exc:
        raise _unreadable(path, exc) from None
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except MemoryError as exc:
        raise _unreadable(path, exc) from None
    if not isinstance(state, dict) or "networks" not in state:
        raise ValueError("not a checkpoint")
    return state


def latest_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """(path, state) of the newest readable checkpoint; ones with bad content are set aside."""
    for path in sorted(Path(folder).glob("ckpt-*.pt"), reverse=True):
        try:
            return path, _read_state(path)
        except CheckpointUnreadable:
            raise
        except Exception as exc:  # truncated, corrupt, or not ours: never resumed from
            aside = path.with_suffix(".corrupt")
            os.replace(path, aside)
            tqdm.write(f"checkpoint {path} unreadable ({type(exc).__name__}); set aside as {aside.name}, "
                       "trying the previous one")
    return None


def remove_checkpoints(folder: Path) -> None:
    for path in Path(folder).glob("ckpt-*.pt"):
        path.unlink(missing_ok=True)
    try:
        Path(folder).rmdir()
    except OSError:
        pass  # set-aside files stay for inspection
