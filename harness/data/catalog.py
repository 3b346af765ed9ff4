"""The two dataset registries: formats (loaders in harness/data/formats/) and datasets (cards).

Both fill themselves on first lookup: LOADERS imports every module of byol_bench.data.formats
(each registers its loader with `@LOADERS.register`), then every plugin module of the entry-point
group `byol_bench.formats`; DATASETS reads the shipped cards (byol_bench.shipped: package data
when installed, datasets/ in a checkout), then the cards of every plugin package of the group
`byol_bench.cards`, all through importlib.resources. `add_cards_dirs` adds the folders of
`data.cards_dirs` after them. A name two cards give (or a card and a plugin's) is refused in one
line naming both files. A card that fails validation is unusable, not fatal: it is kept with
its one-line reason (--list shows it; naming it is that one-line error), and every other card works.
"""
from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from byol_bench.data.card import CARD_FILES, DatasetCard
from byol_bench.errors import UserError
from byol_bench.registry import Registry, discover_modules, entry_point_module, entry_points
from byol_bench.shipped import shipped

# The shipped cards: never a path computed from this file (installed, that would be
# site-packages/datasets: Hugging Face's package).
CARDS_DIR = shipped("cards")
CARDS_GROUP = "byol_bench.cards"

LOADERS = Registry("dataset format", discover=lambda: discover_modules("byol_bench.data.formats", "byol_bench.formats"))


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


def _name_in(path: Path | Traversable) -> str:
    """The name a card file gives itself, or its file name's stem (for an unusable card)."""
    try:
        raw = yaml.safe_load(path.read_text())
        name = raw.get("name") if isinstance(raw, dict) else None
    except (OSError, yaml.YAMLError):
        name = None
    return name.strip() if isinstance(name, str) and name.strip() else path.name.rsplit(".", 1)[0]


def register_cards(cards_dir: Path | Traversable = CARDS_DIR, package: str | None = "byol_bench") -> None:
    """Read every card (*.yaml) in `cards_dir` (default: the shipped cards) into the DATASETS
    registry; `package` is the module that ships them (None: a folder of no package), named
    when a card's name clashes with another's. Reading the same file again changes nothing. A
    card that cannot be used (bad YAML, a wrong type, a path outside the data root, an unknown
    format) is recorded in DATASETS.unusable with its reason instead."""
    for path in sorted((p for p in cards_dir.iterdir() if p.name.endswith(".yaml") and p.is_file()),
                       key=lambda p: p.name):
        try:
            card = DatasetCard.from_yaml(path)
            if CARD_FILES.get(card.name) == str(path) and card.name in DATASETS:
                continue  # this very file, read before
            LOADERS.canonical(card.loader)  # a card naming an unknown format fails here, clearly
        except UserError as exc:
            name = _name_in(path)
            if name not in DATASETS and name not in DATASETS.unusable:
                DATASETS.unusable[name] = str(exc) if str(path) in str(exc) else f"dataset card {path}: {exc}"
            continue
        where = str(path) if package else f"{path} (data.cards_dirs)"
        DATASETS.add(card.name, card, description=card.description, aliases=card.aliases, origin=(package, where))
        CARD_FILES[card.name] = str(path)


def register_shipped_and_plugin_cards() -> None:
    """DATASETS' discovery: the shipped cards, then each installed plugin's (entry points of
    `byol_bench.cards`, each naming a package whose folder holds its cards)."""
    register_cards(CARDS_DIR)
    for ep in entry_points(CARDS_GROUP):
        package = entry_point_module(ep)
        register_cards(files(package), package)


def add_cards_dirs(folders: list[str]) -> None:
    """The folders of `data.cards_dirs`, read after the shipped and the plugins' cards."""
    DATASETS.names()  # the shipped and plugin cards first: a clash names the card it shadows
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise UserError(f"data.cards_dirs: {folder!r} is not a folder (a folder of dataset cards, *.yaml)")
        register_cards(path, package=None)


DATASETS = CardRegistry("dataset", discover=register_shipped_and_plugin_cards)


def get_card(name: str) -> DatasetCard:
    """The card registered under `name` or one of its aliases (UserError listing valid names)."""
    return DATASETS.get(name)
