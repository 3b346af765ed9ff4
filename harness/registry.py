"""One small generic registry: methods, backbones, dataset formats, protocols, datasets.

Modelled on timm's model registry: a decorator registers a builder under a name next to its
definition, `select("byol*")` filters with wildcards, and an unknown name fails with a message
that lists the valid ones. A registry may be given `discover`, called once on its first lookup,
which imports the modules (or reads the cards) that register into it: nobody has to remember
to import them first.

Plugins (README, "Use your own method or dataset without forking"): an installed package
declares entry points in the groups of ENTRY_POINT_GROUPS, each naming a module that registers
on import; `discover_modules` imports them after the built-in modules, and `import_plugins`
imports the modules of `--plugins` / `run.plugins`. A name registered twice is refused in one
line naming the package of each (NameClashError): a plugin never silently replaces a built-in.
"""
from __future__ import annotations

import fnmatch
import functools
import os
import sys
import importlib
import importlib.metadata
import pkgutil
from typing import Any, Callable, Iterable

from byol_bench.errors import UserError


# What an installed plugin declares (pyproject's [project.entry-points."<group>"]): each entry
# point names a module that registers on import; `byol_bench.cards` names a package whose
# folder holds dataset cards (*.yaml).
ENTRY_POINT_GROUPS = ("byol_bench.methods", "byol_bench.formats", "byol_bench.protocols",
                      "byol_bench.backbones", "byol_bench.cards")


class UnknownNameError(UserError):
    """A name that is not registered; the message lists the valid names."""


class NameClashError(UserError, ValueError):
    """One name registered by two packages (a plugin and a built-in, or two plugins)."""


@functools.lru_cache(maxsize=None)
def package_of(module: str) -> str:
    """The distribution that installed `module` (byol-bench for the harness itself, installed or
    in a checkout), else its top-level package: for messages that must say whose a name is."""
    top = module.split(".")[0]
    if top == "byol_bench":
        return "byol-bench"
    dists = importlib.metadata.packages_distributions().get(top)
    return dists[0] if dists else top


def describe_origin(module: str | None, where: str | None = None) -> str:
    """'byol-bench (byol_bench.methods.byol)': the package, then the module or file; a file of
    no package (a card of data.cards_dirs) is named alone."""
    if module is None:
        return where or "?"
    return f"{package_of(module)} ({where or module})"


class Registry:
    """Name -> object, with aliases, one-line descriptions and wildcard selection."""

    def __init__(self, kind: str, discover: Callable[[], None] | None = None):
        self.kind = kind
        self._discover = discover
        self._entries: dict[str, Any] = {}
        self._descriptions: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._not_in_all: set[str] = set()
        self._origins: dict[str, tuple[str | None, str | None]] = {}  # name or alias -> (module, file)

    def register(self, name: str | None = None, *, description: str | None = None,
                 aliases: Iterable[str] = (), in_all: bool = True) -> Callable[[Any], Any]:
        """Decorator: `@METHODS.register("byol")` above a class or function."""
        def decorate(obj: Any) -> Any:
            self.add(name or obj.__name__, obj, description=description, aliases=aliases, in_all=in_all)
            return obj
        return decorate

    def add(self, name: str, obj: Any, *, description: str | None = None,
            aliases: Iterable[str] = (), in_all: bool = True,
            origin: tuple[str | None, str | None] | None = None) -> None:
        """Register `obj`; `in_all=False` keeps it out of "all" (ablation rows: select them by
        name or wildcard). `origin` (module, file) says whose it is; default: obj's module."""
        origin = origin or (getattr(obj, "__module__", None) or "?", None)
        for taken in (name, *aliases):
            if taken in self._entries or taken in self._aliases:
                self._refuse_clash(taken, origin)
        self._entries[name] = obj
        self._origins[name] = origin
        if not in_all:
            self._not_in_all.add(name)
        doc = description or (getattr(obj, "__doc__", None) or "").strip()
        self._descriptions[name] = doc.splitlines()[0] if doc else ""
        for alias in aliases:
            if alias in self._entries or alias in self._aliases:
                self._refuse_clash(alias, origin)
            self._aliases[alias] = name
            self._origins[alias] = origin

    def _refuse_clash(self, name: str, origin: tuple[str | None, str | None]) -> None:
        first = describe_origin(*self._origins.get(name, ("?", None)))
        raise NameClashError(f"{self.kind} {name!r} is registered twice: by {first} and by "
                             f"{describe_origin(*origin)}; rename one of them or uninstall one package")

    def origin(self, name: str) -> str:
        """Whose `name` is: 'byol-bench (byol_bench.methods.byol)', 'my-plugin (my_plugin.methods)'."""
        return describe_origin(*self._origins[self.canonical(name)])

    def built_in(self, name: str) -> bool:
        """Whether the harness itself registered `name` (not a plugin or a card folder)."""
        module = self._origins[self.canonical(name)][0]
        return module is not None and module.split(".")[0] == "byol_bench"

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


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of `group`, in a fixed order (distribution, then name)."""
    return sorted(importlib.metadata.entry_points(group=group),
                  key=lambda ep: (ep.dist.name if ep.dist else "", ep.name))


def entry_point_module(ep: importlib.metadata.EntryPoint) -> str:
    """Import the module an entry point names; one line naming it and its package if it cannot be."""
    dist = ep.dist.name if ep.dist else "an installed package"
    try:
        importlib.import_module(ep.module)
    except ImportError as exc:
        raise UserError(f"plugin {dist}: entry point {ep.name} = {ep.value!r} (group {ep.group}) cannot be "
                        f"imported: {exc}; reinstall or uninstall {dist}") from None
    return ep.module


def discover_modules(package: str | None, group: str) -> None:
    """A registry's discovery: the built-in modules of `package` (None: the registry's own module
    holds them), then every installed plugin module of the entry-point `group`."""
    if package is not None:
        import_submodules(package)
    for ep in entry_points(group):
        entry_point_module(ep)


def import_plugins(modules: Iterable[str]) -> None:
    """Import the modules of `--plugins` / `run.plugins` (each registers what it defines). The
    current folder is searched last, as `python -m` would, so a my_method.py beside the user's
    config is found without an install."""
    modules = [m.strip() for m in modules if m.strip()]
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UserError(f"cannot import plugin module {module!r} (--plugins / run.plugins): {exc}") from None
