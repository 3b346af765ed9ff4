"""The files that ship with the harness: dataset cards and benchmark configs.

Installed from a wheel they are package data, byol_bench/cards/*.yaml and
byol_bench/configs/*.yaml, read through importlib.resources (never a path computed from where
a checkout might be). In a checkout they are the design card's top-level datasets/ and
configs/, which the checkout's byol_bench shim (byol_bench/__init__.py) locates; an editable
install (`pip install -e .`, imported from outside the checkout) names its checkout in the
install record pip wrote (PEP 610's direct_url.json).
"""
from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import byol_bench

# The folders of a checkout that hold what a wheel ships as byol_bench/<kind>/.
CHECKOUT_FOLDERS = {"cards": "datasets", "configs": "configs"}


def shipped(kind: str) -> Traversable:
    """The folder of shipped `kind` files ("cards" or "configs"), installed or in a checkout."""
    packaged = files("byol_bench") / kind
    if packaged.is_dir():
        return packaged
    checkout = checkout_folder()
    if checkout is None:
        raise RuntimeError(f"byol_bench is installed without its {kind} (byol_bench/{kind}/): reinstall it")
    return checkout / CHECKOUT_FOLDERS[kind]


def shipped_names(kind: str) -> list[str]:
    """The names of the shipped `kind` files ("smoke" for configs/smoke.yaml), sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in shipped(kind).iterdir() if p.name.endswith(".yaml"))


def checkout_folder() -> Path | None:
    """The checkout byol_bench runs from, or None when it runs from an installed wheel."""
    checkout = getattr(byol_bench, "CHECKOUT", None)  # defined by the checkout's shim only
    return checkout if checkout is not None else _editable_project()


def _editable_project() -> Path | None:
    """An editable install's checkout: setuptools' import hook maps byol_bench onto its harness/
    (without the shim), and pip recorded the folder it was installed from."""
    try:
        record = json.loads(distribution("byol-bench").read_text("direct_url.json") or "{}")
    except (PackageNotFoundError, json.JSONDecodeError):
        return None
    url = record.get("url", "")
    if not (record.get("dir_info") or {}).get("editable") or not url.startswith("file:"):
        return None
    project = Path(url2pathname(urlparse(url).path))
    # The record belongs to the byol_bench imported here, not to another install of it.
    return project if Path(byol_bench.__file__).resolve().parent == (project / "harness").resolve() else None
