"""Whether the results folder can be written, asked once before a command writes anything
there: a read-only folder is one line naming it, not a traceback from deep inside a run."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from byol_bench.errors import UserError


def require_writable(folder: Path) -> None:
    """UserError unless `folder` and the folders already in it accept a new file (or, when it
    does not exist yet, its nearest existing parent does, so it can be made). Proven by
    writing and removing a probe file: os.access would not do, root passes it on a read-only
    mount. Nothing is left behind."""
    folder = Path(folder).absolute()
    places = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else \
        [next(p for p in folder.parents if p.is_dir())]
    for place in places:
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=place)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise UserError(f"results folder {folder} is not writable ({place}: {exc.strerror or exc}); "
                            f"fix its permissions or choose another with --results-dir") from None
