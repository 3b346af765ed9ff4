"""One small generic registry: methods, backbones, dataset formats, protocols, datasets.

Modelled on timm's model registry: a decorator registers a builder under a name next to its
definition, `select("byol*")` filters with wildcards, and an unknown name fails with a message
that lists the valid ones. A registry may be given `discover`, called once on its first lookup,
which imports the modules (or reads the cards) that register into it: nobody has to remember
to import them first.
"""
from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from typing import Any, Callable, Iterable

from byol_bench.errors import UserError


class UnknownNameError(UserError):
    """A name that is not registered; the message lists the valid names."""


class Registry:
    """Name -> object, with aliases, one-line descriptions and wildcard selection."""

    def __init__(self, kind: str, discover: Callable[[], None] | None = None):
        self.kind = kind
        self._discover = discover
        self._entries: dict[str, Any] = {}
        self._descriptions: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._not_in_all: set[str] = set()

    def register(self, name: str | None = None, *, description: str | None = None,
                 aliases: Iterable[str] = (), in_all: bool = True) -> Callable[[Any], Any]:
        """Decorator: `@METHODS.register("byol")` above a class or function."""
        def decorate(obj: Any) -> Any:
            self.add(name or obj.__name__, obj, description=description, aliases=aliases, in_all=in_all)
            return obj
        return decorate

    def add(self, name: str, obj: Any, *, description: str | None = None,
            aliases: Iterable[str] = (), in_all: bool = True) -> None:
        """Register `obj`; `in_all=False` keeps it out of "all" (ablation rows: select them by
        name or wildcard)."""
        if name in self._entries or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        if not in_all:
            self._not_in_all.add(name)
        doc = description or (getattr(obj, "__doc__", None) or "").strip()
        self._descriptions[name] = doc.splitlines()[0] if doc else ""
        for alias in aliases:
            if alias in self._entries or alias in self._aliases:
                raise ValueError(f"{self.kind} alias {alias!r} is registered twice")
            self._aliases[alias] = name

    def _discovered(self) -> None:
        """Run `discover` once, before the first lookup. Cleared first, since discovery registers
        through `add` and may look names up; restored if it fails, so the error comes back."""
        discover, self._discover = self._discover, None
        if discover is not None:
            try:
                discover()
            except BaseException:
                self._discover = discover
                raise

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases; UnknownNameError otherwise."""
        self._discovered()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names()) or '(none)'}")

    def get(self, name: str) -> Any:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: str) -> bool:
        self._discovered()
        return name in self._entries or name in self._aliases

    def names(self) -> list[str]:
        self._discovered()
        return sorted(self._entries)

    def describe(self, name: str) -> str:
        return self._descriptions[self.canonical(name)]

    def select(self, spec: str | Iterable[str]) -> list[str]:
        """Resolve "all", a comma list, or wildcards ("byol-nobn-*") to registered names.

        Order follows the spec; duplicates are dropped; a pattern that matches nothing is an error.
        """
        items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
        chosen: list[str] = []
        for item in filter(None, items):
            if item == "all":
                matches = [n for n in self.names() if n not in self._not_in_all]
            elif any(ch in item for ch in "*?["):
                matches = fnmatch.filter(self.names(), item)
                if not matches:
                    raise UnknownNameError(
                        f"no {self.kind} matches {item!r}; valid {self.kind}s: {', '.join(self.names())}")
            else:
                matches = [self.canonical(item)]
            chosen.extend(m for m in matches if m not in chosen)
        if not chosen:
            raise UserError(f"no {self.kind} selected; valid {self.kind}s: {', '.join(self.names())}")
        return chosen


def import_submodules(package: str) -> None:
    """Import every module of `package`: each registers what it defines on import."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{info.name}")
