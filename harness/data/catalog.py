"""The two dataset registries: formats (loaders in harness/data/formats/) and datasets (cards).

Both fill themselves on first lookup: LOADERS imports every module of byol_bench.data.formats
(each registers its loader with `@LOADERS.register`), DATASETS reads every card in datasets/.
A card that fails validation is unusable, not fatal: it is kept with its one-line reason
(--list shows it; naming it is that one-line error), and every other card works.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from byol_bench.data.card import CARD_FILES, DatasetCard
from byol_bench.errors import UserError
from byol_bench.registry import Registry, import_submodules

REPO_ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = REPO_ROOT / "datasets"

LOADERS = Registry("dataset format", discover=lambda: import_submodules("byol_bench.data.formats"))


class CardRegistry(Registry):
    """The datasets registry, plus the cards that could not be used: name -> one-line reason.
    Looking up an unusable card raises its reason; "all" and wildcards pass over it."""

    def __init__(self, kind: str, discover=None):
        super().__init__(kind, discover)
        self.unusable: dict[str, str] = {}

    def canonical(self, name: str) -> str:
        self._discovered()
        if name in self.unusable and name not in self._entries and name not in self._aliases:
            raise UserError(self.unusable[name])
        return super().canonical(name)


def _name_in(path: Path) -> str:
    """The name a card file gives itself, or its file name's stem (for an unusable card)."""
    try:
        raw = yaml.safe_load(path.read_text())
        name = raw.get("name") if isinstance(raw, dict) else None
    except (OSError, yaml.YAMLError):
        name = None
    return name.strip() if isinstance(name, str) and name.strip() else path.stem


def register_cards(cards_dir: Path = CARDS_DIR) -> None:
    """Read every card in `cards_dir` (default datasets/) into the DATASETS registry, once
    per name; DATASETS does this for datasets/ on its first lookup. A card that cannot be
    used (bad YAML, a wrong type, a path outside the data root, an unknown format) is
    recorded in DATASETS.unusable with its reason instead."""
    for path in sorted(cards_dir.glob("*.yaml")):
        try:
            card = DatasetCard.from_yaml(path)
            if card.name in DATASETS:
                continue
            LOADERS.canonical(card.loader)  # a card naming an unknown format fails here, clearly
        except UserError as exc:
            name = _name_in(path)
            if name not in DATASETS and name not in DATASETS.unusable:
                DATASETS.unusable[name] = str(exc) if str(path) in str(exc) else f"dataset card {path}: {exc}"
            continue
        DATASETS.add(card.name, card, description=card.description, aliases=card.aliases)
        CARD_FILES[card.name] = str(path)


DATASETS = CardRegistry("dataset", discover=register_cards)


def get_card(name: str) -> DatasetCard:
    """The card registered under `name` or one of its aliases (UserError listing valid names)."""
    return DATASETS.get(name)
