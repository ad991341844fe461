"""The trait taxonomy as data: traits, domains and pressure types, loaded from YAML.

The paper rewards 15 broad traits across 12 domains. Their texts live in the
packaged `taxonomy.yaml`, not in code, so researchers can read them and the scenario
writer can quote them. Users add or change traits, domains and pressures with a YAML
file of their own, with no code, through `load_taxonomy(path)`. Merge rules:

- The user file has the same layout as `taxonomy.yaml`; each top-level section
  (`traits`, `domains`, `pressures`) is optional.
- A new name adds an entry, which must have every required field.
- An existing name overrides that entry field by field: fields the user gives replace
  the packaged ones (a list replaces the whole list), the rest are kept.
- Entries cannot be removed; pick the traits and domains a run uses in its config.
- Names are snake_case. A duplicate name within one file is an error, not "last wins".

Errors raise `BenrlError` naming the file and the entry, e.g.
"my_traits.yaml: trait 'x': missing field 'definition'".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from benrl.errors import BenrlError

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trait(_Entry):
    """A beneficial trait: what it is, how it shows, and how a judge grades it."""

    title: Text = Field(description="display name")
    group: Literal["held_out", "training_only"] = Field(
        description="held_out: evaluated directly; training_only: only trained on"
    )
    definition: Text = Field(description="2-3 sentences: what the trait is")
    good: list[Text] = Field(min_length=1, description="what beneficial behaviour looks like")
    bad: list[Text] = Field(min_length=1, description="what failure looks like")
    rubric: list[Text] = Field(
        min_length=3, max_length=5, description="imperative criterion templates for a judge"
    )
    press_terms: list[Text] = Field(description="public wording of the paper that maps onto it")


class Domain(_Entry):
    """A domain scenarios are set in."""

    title: Text = Field(description="display name")
    description: Text = Field(description="what realistic hard cases look like here")


class Pressure(_Entry):
    """A kind of pressure a scenario applies (user pushback, an incentive, ...)."""

    description: Text = Field(description="what the situation is")
    traits: list[Text] = Field(min_length=1, description="traits this pressure usually probes")


class Taxonomy(_Entry):
    """All traits, domains and pressures, keyed by their snake_case names."""

    traits: dict[str, Trait]
    domains: dict[str, Domain]
    pressures: dict[str, Pressure]


SECTIONS: dict[str, tuple[str, type[_Entry]]] = {
    "traits": ("trait", Trait),
    "domains": ("domain", Domain),
    "pressures": ("pressure", Pressure),
}


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate mapping keys (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse(text: str, where: str) -> dict:
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise BenrlError(f"{where}: line {line}: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise BenrlError(f"{where}: not valid YAML ({' '.join(str(e).split())})") from e
    if not isinstance(raw, dict):
        raise BenrlError(f"{where}: top level must be a mapping with traits, domains, pressures")
    return raw


def _describe(error: ValidationError) -> str:
    """Validation errors as a short phrase, e.g. "missing field 'definition'"."""
    errors = error.errors()
    missing = [f"'{e['loc'][0]}'" for e in errors if e["type"] == "missing"]
    if missing:
        text = f"missing field{'s' * (len(missing) > 1)} {', '.join(missing)}"
        more = len(errors) - len(missing)
    else:
        first, more = errors[0], len(errors) - 1
        field = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            text = f"unknown field '{field}'"
        else:
            text = f"field '{field}': {first['msg']}"
    return text + (f" (and {more} more)" if more else "")


def _entry(
    model: type[_Entry], kind: str, key: Any, fields: Any, old: _Entry | None, where: str
) -> _Entry:
    label = f"{where}: {kind} '{key}'"
    if not isinstance(key, str) or not NAME_RE.fullmatch(key):
        raise BenrlError(f"{label}: name must be snake_case (a-z, 0-9, _)")
    if not isinstance(fields, dict):
        raise BenrlError(f"{label}: must be a mapping of fields")
    data = {**old.model_dump(), **fields} if old else fields
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise BenrlError(f"{label}: {_describe(e)}") from e


def _extend(base: Taxonomy, raw: dict, where: str) -> Taxonomy:
    """Apply one file's entries on top of `base` (see the merge rules above)."""
    unknown = sorted(set(raw) - set(SECTIONS), key=str)
    if unknown:
        raise BenrlError(f"{where}: unknown section '{unknown[0]}' (known: {', '.join(SECTIONS)})")
    merged: dict[str, dict[str, _Entry]] = {}
    for section, (kind, model) in SECTIONS.items():
        given = raw.get(section) or {}
        if not isinstance(given, dict):
            raise BenrlError(f"{where}: '{section}' must be a mapping of names to entries")
        entries = dict(getattr(base, section))
        for key, fields in given.items():
            entries[key] = _entry(model, kind, key, fields, entries.get(key), where)
        merged[section] = entries
    tax = Taxonomy.model_validate(merged)
    for key in raw.get("pressures") or {}:
        for trait in tax.pressures[key].traits:
            if trait not in tax.traits:
                raise BenrlError(
                    f"{where}: pressure '{key}': unknown trait '{trait}' "
                    f"(known: {', '.join(tax.traits)})"
                )
    return tax


@cache
def _packaged() -> Taxonomy:
    text = (files("benrl.data") / "taxonomy.yaml").read_text(encoding="utf-8")
    empty = Taxonomy(traits={}, domains={}, pressures={})
    return _extend(empty, _parse(text, "benrl/data/taxonomy.yaml"), "benrl/data/taxonomy.yaml")


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """The packaged taxonomy, extended and overridden by the user's YAML file if given."""
    if path is None:
        return _packaged()
    if not path.is_file():
        raise BenrlError(f"taxonomy file {path} not found")
    return _extend(_packaged(), _parse(path.read_text(encoding="utf-8"), str(path)), str(path))


def held_out_traits(tax: Taxonomy | None = None) -> list[str]:
    """Names of the traits held out for direct evaluation, in file order."""
    return [k for k, t in (tax or load_taxonomy()).traits.items() if t.group == "held_out"]


def training_traits(tax: Taxonomy | None = None) -> list[str]:
    """Names of the training-only traits, in file order."""
    return [k for k, t in (tax or load_taxonomy()).traits.items() if t.group == "training_only"]


def validate_names(
    *,
    traits: Iterable[str] = (),
    domains: Iterable[str] = (),
    pressures: Iterable[str] = (),
    tax: Taxonomy | None = None,
    where: str = "",
) -> None:
    """Raise BenrlError on the first unknown name, listing the known ones.

    `where` prefixes the message with the place the names came from, e.g. a config key.
    """
    tax = tax or load_taxonomy()
    prefix = f"{where}: " if where else ""
    for kind, names, known in (
        ("trait", traits, tax.traits),
        ("domain", domains, tax.domains),
        ("pressure", pressures, tax.pressures),
    ):
        for name in names:
            if name not in known:
                raise BenrlError(f"{prefix}unknown {kind} '{name}' (known: {', '.join(known)})")


def taxonomy_table(tax: Taxonomy | None = None) -> list[dict[str, str]]:
    """One row per trait, domain and pressure, with the same columns, for printing."""
    tax = tax or load_taxonomy()
    rows = [
        {
            "kind": "trait",
            "name": k,
            "group": t.group,
            "title": t.title,
            "description": t.definition,
            "notes": "; ".join(t.press_terms),
        }
        for k, t in tax.traits.items()
    ]
    rows += [
        {
            "kind": "domain",
            "name": k,
            "group": "",
            "title": d.title,
            "description": d.description,
            "notes": "",
        }
        for k, d in tax.domains.items()
    ]
    rows += [
        {
            "kind": "pressure",
            "name": k,
            "group": "",
            "title": k.replace("_", " "),
            "description": p.description,
            "notes": "probes " + ", ".join(p.traits),
        }
        for k, p in tax.pressures.items()
    ]
    return rows
