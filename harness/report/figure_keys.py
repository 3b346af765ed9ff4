"""Keys of the leaderboard's figures, so that a figure is drawn again only when what it shows
could differ (byol_bench.report.figures draws them).

A figure's key is a sha256 over every input of its drawing: the numbers and labels drawn, the
drawing code (its module's file), matplotlib's version and its rc settings. It is saved in the
PNG itself, as the text chunk KEY_FIELD, so it cannot outlive or lag its image: a PNG replaced,
copied or truncated carries its own key or none. Same key, same figure: it is kept as it is.
What the key does not see are the fonts installed; after changing those, delete figures/.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

KEY_FIELD = "byol-bench figure key"  # the PNG text chunk that holds a figure's key
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"


@lru_cache(maxsize=None)
def code_version(code: Path) -> str:
    """Digest of the drawing code (the file `code`) and matplotlib's version: fixed for a process."""
    import matplotlib

    return hashlib.sha256(Path(code).read_bytes() + matplotlib.__version__.encode()).hexdigest()


def drawing_version(code: Path) -> str:
    """Digest of what draws a figure besides its numbers: `code_version` and matplotlib's rc
    settings, read at each call (a process may change them; the backend is left unresolved)."""
    import matplotlib

    settings = sorted((k, repr(matplotlib.rcParams[k])) for k in matplotlib.rcParams if k != "backend")
    return hashlib.sha256((code_version(code) + repr(settings)).encode()).hexdigest()


def _feed(digest, value) -> None:
    """Add `value` (numbers, text, arrays, and lists, tuples and dicts of them) to `digest`,
    typed and delimited, so that two different inputs never feed the same bytes."""
    if isinstance(value, np.ndarray):
        digest.update(f"array {value.dtype.str} {value.shape};".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        _feed(digest, sorted(value.items()))
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def figure_key(code: Path, *inputs) -> str:
    """The key of a figure drawn from `inputs` by the code in the file `code`."""
    digest = hashlib.sha256(drawing_version(code).encode())
    _feed(digest, inputs)
    return digest.hexdigest()


def stored_key(path: Path) -> str | None:
    """The key a complete PNG at `path` was saved with; None when there is no file, no key or
    no complete PNG."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not (data.startswith(PNG_SIGNATURE) and data.endswith(PNG_END)):
        return None
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"tEXt":
            field, _, text = data[pos + 8:pos + 8 + length].partition(b"\0")
            if field == KEY_FIELD.encode("latin-1"):
                return text.decode("latin-1")
        if kind == b"IDAT":  # matplotlib writes its text chunks before the image data
            return None
        pos += 12 + length
    return None
