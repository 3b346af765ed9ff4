"""Reading the CSV and list files that ship with medical datasets, with messages that name
the file and the problem (a missing file uses the card's download help)."""
from __future__ import annotations

import csv
from pathlib import Path

from byol_bench.data.card import DatasetCard, require
from byol_bench.errors import UserError


def read_csv_rows(card: DatasetCard, path: Path, required: list[str]) -> list[dict[str, str]]:
    """Rows of `path` as dicts (header -> text), after checking the `required` columns exist.

    Headers are stripped of spaces and a UTF-8 byte-order mark. A header such as
    ChestX-ray14's unquoted "OriginalImage[Width,Height]" simply becomes two columns, which
    is harmless: only the required columns are used.
    """
    require(card, path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows = [r for r in reader if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"dataset {card.name!r}: cannot read {path}: {exc}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"dataset {card.name!r}: {path} has no column(s) {', '.join(map(repr, missing))}; "
                        f"its columns are: {', '.join(h for h in header if h) or '(none)'}")
    index = {c: header.index(c) for c in header if c}
    out = []
    for line, row in enumerate(rows, start=2):
        if len(row) < len(index) and any(index[c] >= len(row) for c in required):
            raise UserError(f"dataset {card.name!r}: {path} line {line}: {len(row)} fields, "
                            f"expected {len(header)}")
        out.append({c: (row[i].strip() if i < len(row) else "") for c, i in index.items()})
    return out


def read_name_list(card: DatasetCard, path: Path) -> list[str]:
    """A list file of one image name per line (ChestX-ray14's train_val_list.txt / test_list.txt)."""
    require(card, path)
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"dataset {card.name!r}: cannot read {path}: {exc}") from None


def absent_files_error(card: DatasetCard, listed_in: Path, folder: Path, names: list[str]) -> UserError:
    """Images a CSV/list names that are not on disk: how many, the first few, where."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return UserError(f"dataset {card.name!r}: {len(names)} image(s) listed in {listed_in} are absent "
                     f"from {folder}: {shown}. Unpack the complete archive(s) there "
                     f"(see datasets/{card.name}.yaml, download).")
