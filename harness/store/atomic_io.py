"""Atomic file writes for the store (shared filesystems included): a reader sees the old file
or the new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def _atomic_write(path: Path, write) -> Path:
    """`write(file)` into a temporary file beside `path`, fsync, then rename over `path` (rename
    is atomic on POSIX and NFS; a crash leaves at most a stray .tmp file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(path: Path, payload) -> Path:
    """torch.save to `path`, atomically."""
    return _atomic_write(path, lambda f: torch.save(payload, f))


def atomic_write_text(path: Path, text: str) -> Path:
    """`text` (UTF-8) to `path`, atomically."""
    return _atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """`data` to `path`, atomically."""
    return _atomic_write(path, lambda f: f.write(data))
