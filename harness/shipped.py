"""The files that ship with the harness: dataset cards and benchmark configs.

Installed from a wheel they are package data, byol_bench/cards/*.yaml and
byol_bench/configs/*.yaml, read through importlib.resources (never a path computed from where
a checkout might be). In a checkout they are the design card's top-level datasets/ and
configs/, which the checkout's byol_bench shim (byol_bench/__init__.py) locates.
"""
from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

import byol_bench

# The folders of a checkout that hold what a wheel ships as byol_bench/<kind>/.
CHECKOUT_FOLDERS = {"cards": "datasets", "configs": "configs"}


def shipped(kind: str) -> Traversable:
    """The folder of shipped `kind` files ("cards" or "configs"), installed or in a checkout."""
    packaged = files("byol_bench") / kind
    if packaged.is_dir():
        return packaged
    checkout = getattr(byol_bench, "CHECKOUT", None)
    if checkout is None:
        raise RuntimeError(f"byol_bench is installed without its {kind} (byol_bench/{kind}/): reinstall it")
    return checkout / CHECKOUT_FOLDERS[kind]
