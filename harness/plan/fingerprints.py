"""What a run is made from beyond its config: the code that trains it and the data it sees.

DESIGN.md, "When a stored result is stale". Every run config carries `fingerprints` (a derived
key, like `run_hash`: recorded in config.json, never hashed into an identity, so stores made
before keep their hashes), and every saved encoder and checkpoint carries its pretraining part:

    method_code   [[file, hash], ...]  the method's module and the method modules it builds on
                                       (the classes of its MRO defined outside harness/)
    shared_code   [[file, hash], ...]  the pretraining code every method shares: the method
                                       contract, training/ (loop, augmentation, optimiser),
                                       losses/, models/, run/build.py
    data          {dataset: {"card": {...}, "source": str | None}}  the card fields that change
                                       splits or pixels, and the source files' fingerprint
                                       (byol_bench.data.cache), for the dataset and transfer targets

A code hash is that of the module with docstrings removed, unparsed from its syntax tree:
comments, docstrings and formatting do not count. Lists of pairs, not dicts: Sacred refuses
config keys with a dot ("methods/byol.py"). The comparisons live in harness/store/staleness.py.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import sys
from pathlib import Path

from byol_bench.data import DATASETS
from byol_bench.data.cache import source_fingerprint
from byol_bench.method import METHODS

HARNESS = Path(__file__).resolve().parents[1]
# The pretraining code every method shares, relative to harness/ (the augmentation lives in training/).
SHARED_CODE = ("method.py", "training", "losses", "models", "run/build.py")
# Card fields that decide which images a run sees and how: its splits, pixels, labels.
DATA_FIELDS = ("loader", "root", "splits", "split_seed", "group_by", "image_size", "channels", "mean",
               "std", "classes", "task", "options")

_hashes: dict[tuple[str, int, int], str] = {}


def code_hash(path: Path) -> str:
    """sha256 (16 hex digits) of the module's code with docstrings, comments and formatting left
    out; memoised per file version (path, size, mtime), so a plan parses each file once."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                node.module = _checkout_name(node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    alias.name = _checkout_name(alias.name)
            body = getattr(node, "body", None)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        _hashes[key] = hashlib.sha256(ast.unparse(tree).encode()).hexdigest()[:16]
    return _hashes[key]


def _checkout_name(module: str) -> str:
    """The import name a module had before the package was named byol_bench (harness.X,
    methods.X): which name the code imports under is no change in what it computes, so stores
    made before the rename keep their code fingerprints."""
    if module == "byol_bench.methods" or module.startswith("byol_bench.methods."):
        return module.removeprefix("byol_bench.")
    if module == "byol_bench" or module.startswith("byol_bench."):
        return "harness" + module.removeprefix("byol_bench")
    return module


def _module_file_name(module) -> str:
    """'methods/byol_ccsl.py': the file as its import path names it (the same on every machine)."""
    path = Path(inspect.getsourcefile(module))
    # The built-in methods are named by their checkout path, as stores made before the package
    # was named byol_bench name them, so a rename alone never makes a run outdated.
    parts = module.__name__.removeprefix("byol_bench.").split(".")
    return "/".join([*parts, path.name] if path.name == "__init__.py" else [*parts[:-1], path.name])


def method_code(method: str) -> list[list[str]]:
    """[[file, hash]] of the modules defining the method's class and the classes it builds on,
    the harness's own (the Method contract: shared code) left out."""
    files = {}
    for klass in METHODS.get(method).__mro__:
        module = sys.modules.get(klass.__module__)
        shared = klass.__module__.startswith("byol_bench.") and not klass.__module__.startswith("byol_bench.methods.")
        if module is None or shared or klass.__module__.split(".")[0] in ("builtins", "abc"):
            continue
        try:
            path = Path(inspect.getsourcefile(module))
        except TypeError:  # a built-in module: no source to fingerprint
            continue
        files.setdefault(_module_file_name(module), code_hash(path))
    return [[name, digest] for name, digest in files.items()]


def shared_code() -> list[list[str]]:
    """[[file, hash]] of the shared pretraining code, sorted by file."""
    paths = []
    for entry in SHARED_CODE:
        path = HARNESS / entry
        paths += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [[f"harness/{p.relative_to(HARNESS).as_posix()}", code_hash(p)] for p in sorted(paths)]


def card_fields(card) -> dict:
    fields = dataclasses.asdict(card)
    return {k: list(fields[k]) if isinstance(fields[k], tuple) else fields[k] for k in DATA_FIELDS}


class Fingerprints:
    """The fingerprints of one plan: each dataset's source files are fingerprinted once per plan
    (a stat of every file under its root, as the decoded cache does), the code once per file."""

    def __init__(self, data_root: str | Path):
        self.data_root = Path(data_root)
        self._data: dict[str, dict] = {}
        self._shared: list | None = None

    def data(self, dataset: str) -> dict:
        card = DATASETS.get(dataset)
        if card.name not in self._data:
            try:
                source = source_fingerprint(card, self.data_root / card.root)
            except OSError:  # data partly missing: the run's load reports what exactly
                source = None
            self._data[card.name] = {"card": card_fields(card), "source": source}
        return self._data[card.name]

    def of_run(self, rc: dict, datasets: list[str]) -> dict:
        """The `fingerprints` of run config `rc`, reading `datasets` (its own first, then its
        transfer targets)."""
        if self._shared is None:
            self._shared = shared_code()
        return {"method_code": method_code(rc["method"]), "shared_code": list(self._shared),
                "data": {DATASETS.get(name).name: self.data(name) for name in datasets}}
