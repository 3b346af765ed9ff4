"""Atomic file writes for the store (shared filesystems included): a reader sees the old file
or the new one, never half of one."""
from __future__ import annotations

import errno
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
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        code = _out_of_space(exc)
        if code is not None:  # torch.save hides the OSError under "[enforce fail at inline_container.cc]"
            raise DiskFullError(code, path) from exc
        raise
    return path


class DiskFullError(OSError):
    """A store file could not be written for want of space (ENOSPC, a quota): says so and where."""

    def __init__(self, code: int, path: Path):
        super().__init__(code, f"{os.strerror(code).lower()} writing {path}", str(path))

    def __str__(self) -> str:
        return self.strerror


def _out_of_space(exc: BaseException | None) -> int | None:
    """ENOSPC or EDQUOT from `exc` or the exceptions it was raised from, else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None


def atomic_torch_save(path: Path, payload) -> Path:
    """torch.save to `path`, atomically."""
    return _atomic_write(path, lambda f: torch.save(payload, f))


def atomic_write_text(path: Path, text: str) -> Path:
    """`text` (UTF-8) to `path`, atomically."""
    return _atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """`data` to `path`, atomically."""
    return _atomic_write(path, lambda f: f.write(data))
