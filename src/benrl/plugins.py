"""Plug-ins: packages that add judges, evals, scenario sources, stress data or direction pairs.

A plug-in is a module named in the `benrl.plugins` entry-point group of an installed
package; importing it registers what it adds in the core's registries. The core never
imports a plug-in by name: registries call `load_plugins()` before a lookup. The
embedded organism is one such plug-in (`benrl.organism.plugin`, see pyproject.toml).
"""

from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "benrl.plugins"
_loaded = False


def load_plugins() -> None:
    """Import every installed plug-in once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: a plug-in's own registry lookups must not recurse
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        entry.load()
