"""Plug-ins: packages that add judges, evals, scenario sources, stress data or direction pairs.

A plug-in is a module named in the `benrl.plugins` entry-point group of an installed
package; importing it registers what it adds in the core's registries. The core never
imports a plug-in by name: registries call `load_plugins()` before a lookup. The
embedded organism is one such plug-in (`benrl.organism.plugin`, see pyproject.toml).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Generic, TypeVar

from benrl.errors import BenrlError

GROUP = "benrl.plugins"
T = TypeVar("T")
_loaded = False


def load_plugins() -> None:
    """Import every installed plug-in once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: a plug-in's own registry lookups must not recurse
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        entry.load()


class Registry(Generic[T]):
    """Named plug-in points (scenario sources, harmful data, direction pairs, ...).

    `get` loads the plug-ins first and names what is known when a name is missing: a
    forgotten registration is an error, never a silent fallback.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> None:
        self.entries[name] = entry

    def get(self, name: str) -> T:
        load_plugins()
        if name not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none"
            raise BenrlError(f"unknown {self.what} '{name}' (known: {known})")
        return self.entries[name]
