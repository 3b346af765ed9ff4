"""The config's plugins, made known before the grid looks any name up.

`run.plugins` (and `--plugins`) names modules that register methods, formats, protocols or
backbones on import; `data.cards_dirs` names folders of more dataset cards. Installed plugins'
entry points need neither: the registries discover them on their first lookup. Every process
that expands a grid calls `use_plugins` with the config it was given (the CLI, a local
launcher's worker, a SLURM task), so each imports the same plugins.
"""
from __future__ import annotations

from byol_bench.data.catalog import add_cards_dirs
from byol_bench.registry import import_plugins


def use_plugins(cfg: dict) -> None:
    """Import `run.plugins`, then read the cards of `data.cards_dirs` (after the shipped ones)."""
    import_plugins(cfg["run"]["plugins"])
    add_cards_dirs(cfg["data"]["cards_dirs"])
