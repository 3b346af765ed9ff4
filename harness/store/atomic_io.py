"""Atomic file writes for the store (shared filesystems included): a reader sees the old file
or the new one, never half of one.

Files are created with the process's umask (0o666 & ~umask), like any file the user writes:
in a results folder shared by a group (a cluster's project space) the others must be able to
read the claims, encoders and checkpoints (mkstemp's 0600 would hide them).
"""
from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path


def _temp_beside(path: Path) -> tuple[int, Path]:
    """An open descriptor on a new, uniquely named temporary file in `path`'s folder."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), tmp
        except FileExistsError:
            continue


def _write_temp(path: Path, write) -> Path:
    """`write(file)` into a temporary file beside `path`, fsynced; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        code = _out_of_space(exc)
        if code is not None:  # torch.save hides the OSError under "[enforce fail at inline_container.cc]"
            raise DiskFullError(code, path) from exc
        raise
    return tmp


def _atomic_write(path: Path, write) -> Path:
    """`write(file)` into a temporary file beside `path`, fsync, then rename over `path` (rename
    is atomic on POSIX and NFS; a crash leaves at most a stray .tmp file)."""
    path = Path(path)
    tmp = _write_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    import torch  # here, not at the top: the leaderboard writes through this module without torch

    return _atomic_write(path, lambda f: torch.save(payload, f))


def atomic_write_text(path: Path, text: str) -> Path:
    """`text` (UTF-8) to `path`, atomically."""
    return _atomic_write(path, lambda f: f.write(text.encode()))


def create_text(path: Path, text: str) -> bool:
    """Create `path` holding `text`, complete from the first moment anyone can see it; False
    when `path` exists. Written to a temporary file, then hard-linked into place: link is atomic
    and fails on an existing name, on NFS too (an exclusive create would show an empty file
    until the write lands)."""
    path = Path(path)
    tmp = _write_temp(path, lambda f: f.write(text.encode()))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        # NFS may retry a link whose reply was lost and answer EEXIST: then ours has 2 links.
        return os.stat(tmp).st_nlink == 2
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """`data` to `path`, atomically."""
    return _atomic_write(path, lambda f: f.write(data))
