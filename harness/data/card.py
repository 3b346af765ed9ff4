"""The dataset card (datasets/*.yaml): what a dataset is, and the helpers loaders use with it.

A card says what a dataset is (classes, task, metric, image size, channels, mean/std, splits,
grouping key, where to get it); a loader (harness/data/formats/), registered under a format
name, knows how to read that format from disk. Adding a dataset in an existing format is a new
card only.

Card conventions shared by every loader:
- `root` is the dataset's path relative to --data-root (a folder, or a file for MedMNIST).
- `splits` maps split name -> a fraction (carved, stratified, from the labelled training
  pool with `split_seed`; the numeric entries sum to 1) or the word `official` (taken as
  the archive ships it).
- images are resized so the shorter side equals `image_size`, then center-cropped square
  (square sources are plainly resized); colour is converted to `channels` (1: ITU-R 601
  luma as PIL's "L"; 3: RGB, grey replicated, alpha dropped, CMYK converted by PIL).
- `download` holds `source` (the official page), `instructions` (how to fetch and unpack,
  shown when the data is missing) and optionally `files` (url + md5/sha256 [+ unpack]) for
  `--download`.
- every path a card names (`root`, a download's `dest` and `filename`, a loader's file and
  folder options) is relative and stays inside --data-root: no absolute path, no `..`. Cards
  come from other people's repositories; what they name is never followed outside the data root.
"""
from __future__ import annotations

import dataclasses
import math
import urllib.parse
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np
import yaml

from byol_bench.errors import UserError

SPLIT_NAMES = ("train", "val", "test", "unlabeled")
OFFICIAL = "official"
# data.pretrain_splits -> the splits SSL pretraining reads, in order (never val or test).
PRETRAIN_SPLITS = {"train+unlabeled": ("train", "unlabeled"), "unlabeled": ("unlabeled",), "train": ("train",)}
# What a download entry may say (byol_bench.data.download reads them).
DOWNLOAD_ENTRY_KEYS = ("url", "md5", "sha256", "filename", "dest", "unpack", "keep")
# name -> the card file it was registered from (byol_bench.data.catalog fills it): errors found
# while loading name the file a user has to edit.
CARD_FILES: dict[str, str] = {}


def _is_text(v: Any) -> bool:
    return isinstance(v, str)


def _is_names(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) and x.strip() for x in v)


def _is_numbers(v: Any, low: float = -math.inf) -> bool:
    return isinstance(v, (list, tuple)) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > low for x in v)


def _is_int(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


# Card field -> (test, what it must be): checked before anything reads the card, so a wrong
# type is one line naming the file and the field, never a traceback later.
FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: isinstance(v, str) and bool(v.strip()), "a name"),
    "loader": (_is_text, "a format name"),
    "task": (lambda v: v in ("multiclass", "multilabel"), "multiclass or multilabel"),
    "primary_metric": (_is_text, "a metric name"),
    "image_size": (lambda v: _is_int(v, 1), "a positive integer"),
    "channels": (lambda v: _is_int(v, 1) and v in (1, 3), "1 or 3"),
    "mean": (_is_numbers, "a list of numbers, one per channel"),
    "std": (lambda v: _is_numbers(v, low=0.0), "a list of positive numbers, one per channel"),
    "classes": (_is_names, "a list of class names (quote numbers: ['0', '1'])"),
    "aliases": (_is_names, "a list of names"),
    "root": (_is_text, "a path relative to --data-root"),
    "splits": (lambda v: isinstance(v, dict), "a mapping of split -> fraction or 'official'"),
    "split_seed": (lambda v: _is_int(v, 0), "a non-negative integer"),
    "group_by": (lambda v: v is None or isinstance(v, str), "a column name"),
    "description": (_is_text, "text"),
    "citation": (_is_text, "text"),
    "download": (lambda v: isinstance(v, dict), "a mapping (source, instructions, files)"),
    "options": (lambda v: isinstance(v, dict), "a mapping of loader options"),
    "sources": (_is_names, "a list of names (e.g. [HAM10000])"),
}


def card_file(card: "DatasetCard") -> str:
    """The file a card was registered from, or its name (a card built in code)."""
    return CARD_FILES.get(card.name, card.name)


def inside_path_problem(value: Any) -> str | None:
    """Why `value` is not a relative path that stays inside the folder it is joined to, or None.
    Judged as written (no `..` part, not absolute): symbolic links the user made are theirs."""
    if not isinstance(value, str):
        return f"must be a relative path (text), got {value!r}"
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return f"must be a relative path inside --data-root (no leading '/', no '..'), got {value!r}"
    return None


def check_download(download: dict, where: str) -> None:
    """The `download` section: files is a list of entries with an http(s) url, and every path
    an entry writes (dest/filename) stays inside the data root."""
    files = download.get("files") or []
    if not isinstance(files, list):
        raise UserError(f"dataset card {where}: download.files must be a list of entries, got {files!r}")
    for i, entry in enumerate(files):
        at = f"download.files[{i}]"
        if not isinstance(entry, dict):
            raise UserError(f"dataset card {where}: {at} must be a mapping (url, md5 or sha256, ...), got {entry!r}")
        unknown = sorted(set(entry) - set(DOWNLOAD_ENTRY_KEYS))
        if unknown:
            raise UserError(f"dataset card {where}: {at} has unknown key(s) {', '.join(unknown)}; "
                            f"valid keys: {', '.join(DOWNLOAD_ENTRY_KEYS)}")
        url = entry.get("url")
        parsed = urllib.parse.urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
            raise UserError(f"dataset card {where}: {at}.url must be an http:// or https:// URL, got {url!r}")
        filename = entry.get("filename") or PurePosixPath(parsed.path).name
        if not isinstance(filename, str) or filename in ("", ".", "..") or "/" in filename or "\\" in filename:
            what = "filename" if entry.get("filename") else "url"
            raise UserError(f"dataset card {where}: {at}.{what} must name a plain file (no folders, no '..'; "
                            f"set filename), got {entry.get(what)!r}")
        problem = inside_path_problem(entry.get("dest", ""))
        if problem:
            raise UserError(f"dataset card {where}: {at}.dest {problem}")
        for key in ("unpack", "keep"):
            if key in entry and not isinstance(entry[key], bool):
                raise UserError(f"dataset card {where}: {at}.{key} must be true or false, got {entry[key]!r}")


@dataclass(frozen=True)
class DatasetCard:
    """What a datasets/<name>.yaml says. `options` holds loader-specific settings."""
    name: str
    loader: str
    task: str = "multiclass"                 # multiclass | multilabel
    primary_metric: str = "accuracy"
    image_size: int = 32
    channels: int = 3
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    classes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    root: str = ""
    splits: dict[str, Any] = field(default_factory=dict)
    split_seed: int = 0
    group_by: str | None = None
    description: str = ""
    citation: str = ""
    download: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # Where the images come from (e.g. HAM10000): two cards naming a common source hold the same
    # images, so a transfer pair between them is refused (byol_bench.evaluation.transfer.parse_pair).
    sources: tuple[str, ...] = ()

    @classmethod
    def from_yaml(cls, path: Path | Traversable) -> "DatasetCard":
        """The card in `path`: a file, or a package's resource (importlib.resources)."""
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise UserError(f"cannot read dataset card {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:  # one line: the problem and where, not PyYAML's 8-line report
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserError(f"dataset card {path} is not valid YAML: {problem}{at}") from None
        if not isinstance(raw, dict):
            raise UserError(f"dataset card {path}: expected a mapping of keys, got {type(raw).__name__}")
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - valid)
        if unknown:
            raise UserError(f"dataset card {path}: unknown key(s) {', '.join(unknown)}; "
                            f"valid keys: {', '.join(sorted(valid))}")
        for key in ("mean", "std", "classes", "aliases", "sources"):
            if key in raw and (raw[key] is None or isinstance(raw[key], list)):
                raw[key] = tuple(raw[key] or ())  # anything else is left for check() to name
        for key in ("splits", "download", "options"):
            if raw.get(key) is None and key in raw:
                raw[key] = {}
        try:
            card = cls(**raw)
        except TypeError as exc:
            raise UserError(f"dataset card {path}: {exc}") from None
        card.check(str(path))
        return card

    def check(self, where: str) -> None:
        """Validate every field (types, ranges, paths); UserError naming `where` and the field."""
        for name, (ok, what) in FIELD_RULES.items():
            value = getattr(self, name)
            if not ok(value):
                shown = list(value) if isinstance(value, tuple) else value
                raise UserError(f"dataset card {where}: {name} must be {what}, got {shown!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise UserError(f"dataset card {where}: mean and std need {self.channels} values (channels)")
        problem = inside_path_problem(self.root)
        if problem:
            raise UserError(f"dataset card {where}: root {problem}")
        check_download(self.download, where)
        bad = sorted(set(self.splits) - set(SPLIT_NAMES))
        if bad:
            raise UserError(f"dataset card {where}: unknown split(s) {', '.join(bad)}; "
                            f"valid splits: {', '.join(SPLIT_NAMES)}")
        if self.splits and not {"train", "val", "test"} <= set(self.splits):
            raise UserError(f"dataset card {where}: splits must name train, val and test "
                            f"(as fractions or '{OFFICIAL}'), got {', '.join(self.splits)}")
        fractions = {}
        for name, value in self.splits.items():
            if value == OFFICIAL:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise UserError(f"dataset card {where}: split {name} must be a fraction in [0, 1] "
                                f"or '{OFFICIAL}', got {value!r}")
            fractions[name] = float(value)
        if fractions and not np.isclose(sum(fractions.values()), 1.0):
            raise UserError(f"dataset card {where}: the split fractions {fractions} must sum to 1")

    def shared_sources(self, other: "DatasetCard") -> list[str]:
        """The image sources this card has in common with `other` (case-insensitive), in this
        card's order. Empty when either card names none: then nothing can be checked."""
        theirs = {s.strip().casefold() for s in other.sources}
        return [s for s in self.sources if s.strip().casefold() in theirs]

    def split_fractions(self) -> dict[str, float]:
        """The carved splits: name -> fraction of the labelled training pool."""
        return {k: float(v) for k, v in self.splits.items() if v != OFFICIAL}

    def official_splits(self) -> list[str]:
        return [k for k, v in self.splits.items() if v == OFFICIAL]


def missing_data_error(card: DatasetCard, path: Path, problem: str = "not found") -> UserError:
    """The one message for absent data: the exact path, the official source, how to unpack."""
    lines = [f"dataset {card.name!r}: {problem}: {path}"]
    source = card.download.get("source")
    if source:
        lines.append(f"  official source: {source}")
    if card.download.get("instructions"):
        lines.append(f"  how to get it: {' '.join(str(card.download['instructions']).split())}")
    if card.download.get("files"):
        lines.append("  or fetch and check it automatically with --download")
    return UserError("\n".join(lines))


def require(card: DatasetCard, path: Path, what: str = "") -> Path:
    """`path` if it exists, else the missing-data UserError for `card`."""
    if not path.exists():
        raise missing_data_error(card, path, f"{what} not found" if what else "not found")
    return path


def card_options(card: DatasetCard, defaults: dict[str, Any], paths: tuple[str, ...] = ()) -> dict[str, Any]:
    """The card's loader options over `defaults`; an unknown option is a UserError, and so is
    a path option (`paths`: text, a list, or a mapping of them) that would leave the dataset's
    folder."""
    unknown = sorted(set(card.options) - set(defaults))
    if unknown:
        raise UserError(f"dataset card {card_file(card)}: unknown option(s) {', '.join(unknown)} for "
                        f"loader {card.loader}; valid options: {', '.join(sorted(defaults)) or '(none)'}")
    for key in paths:
        for item in _leaves(card.options.get(key)):
            problem = inside_path_problem(item)
            if problem:
                raise UserError(f"dataset card {card_file(card)}: options.{key} {problem}")
    return {**defaults, **card.options}


def _leaves(value: Any) -> list[Any]:
    """The texts of an option that is text, a list, or a mapping of either (None: none)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    return list(value) if isinstance(value, list) else [value]
