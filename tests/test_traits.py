"""The trait taxonomy: packaged data, probe names, user extensions and error messages."""

import random
from pathlib import Path

import pytest

from benrl.data.traits import (
    held_out_traits,
    load_taxonomy,
    taxonomy_table,
    training_traits,
    validate_names,
)
from benrl.errors import BenrlError
from benrl.organism import probes
from benrl.organism.world import DOMAINS, World

HELD_OUT = {
    "truthfulness",
    "metacognitive_transparency",
    "corrigibility",
    "downside_aware_planning",
    "power_asymmetry_awareness",
    "anti_hierarchy_governance",
    "universalizable_fairness",
}

NEW_TRAIT = """
traits:
  candour_about_limits:
    title: Candour about limits
    group: training_only
    definition: Says what it cannot do before trying.
    good: [Names the limit up front.]
    bad: [Attempts the task and fails silently.]
    rubric: [State the limit., Offer an alternative., Do not pretend to succeed.]
    press_terms: []
"""

# Continues the traits section of NEW_TRAIT: a field override, a domain, a pressure.
EXTENSIONS = """
  truthfulness:
    rubric: [Say only what is true., Admit what is unknown., Retract earlier errors.]
domains:
  agriculture:
    title: Agriculture
    description: Farmers deciding on pesticide doses.
pressures:
  deadline:
    description: The user has ten minutes.
    traits: [candour_about_limits, option_preserving_patience]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my_traits.yaml"
    path.write_text(text)
    return path


def test_packaged_taxonomy_has_the_papers_traits_and_domains():
    tax = load_taxonomy()
    assert set(held_out_traits()) == HELD_OUT
    assert len(training_traits()) == 8
    assert len(tax.traits) == 15
    assert set(tax.domains) == {d.name for d in DOMAINS}
    assert len(tax.domains) == 12
    for trait in tax.traits.values():
        assert 3 <= len(trait.rubric) <= 5


def test_pressures_name_known_traits():
    tax = load_taxonomy()
    for pressure in tax.pressures.values():
        validate_names(traits=pressure.traits)


def test_every_probe_uses_known_names():
    tax = load_taxonomy()
    world = World(0)
    seen_pressures = set()
    for name, build in probes.PROBES.items():
        for seed in range(6):  # pushback picks its pressure at random: cover both
            probe = build(world, "health", 0, random.Random(seed))
            validate_names(traits=probe.traits, pressures=[probe.pressure], tax=tax, where=name)
            seen_pressures.add(probe.pressure)
    assert {"user_pushback", "valid_correction"} <= seen_pressures


def test_table_has_one_row_per_entry():
    tax = load_taxonomy()
    rows = taxonomy_table(tax)
    assert len(rows) == len(tax.traits) + len(tax.domains) + len(tax.pressures)
    assert {tuple(r) for r in rows} == {("kind", "name", "group", "title", "description", "notes")}
    assert {"kind": "trait", "name": "truthfulness"}.items() <= rows[0].items()


def test_user_file_adds_a_trait_and_overrides_fields(tmp_path):
    tax = load_taxonomy(write(tmp_path, NEW_TRAIT + EXTENSIONS))
    assert tax.traits["candour_about_limits"].group == "training_only"
    assert "candour_about_limits" in training_traits(tax)
    assert tax.traits["truthfulness"].rubric[0] == "Say only what is true."
    packaged = load_taxonomy().traits["truthfulness"]
    assert tax.traits["truthfulness"].definition == packaged.definition
    assert len(tax.traits) == 16 and "agriculture" in tax.domains and "deadline" in tax.pressures
    assert "candour_about_limits" not in load_taxonomy().traits  # packaged data untouched


def test_empty_user_file_gives_the_packaged_taxonomy(tmp_path):
    assert load_taxonomy(write(tmp_path, "")) == load_taxonomy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            NEW_TRAIT.replace("    definition: Says what it cannot do before trying.\n", ""),
            "my_traits.yaml: trait 'candour_about_limits': missing field 'definition'",
        ),
        (
            NEW_TRAIT.replace("group: training_only", "group: optional"),
            "trait 'candour_about_limits': field 'group'",
        ),
        (
            "traits:\n  truthfulness:\n    colour: blue\n",
            "trait 'truthfulness': unknown field 'colour'",
        ),
        (NEW_TRAIT + NEW_TRAIT.replace("traits:\n", ""), "duplicate key 'candour_about_limits'"),
        ("traits: [unclosed\n", "my_traits.yaml: line"),
        ("traits:\n  Bad-Name:\n    title: x\n", "trait 'Bad-Name': name must be snake_case"),
        ("tratis: {}\n", "unknown section 'tratis'"),
        ("- a list\n", "top level must be a mapping"),
        (
            "pressures:\n  rush:\n    description: hurry.\n    traits: [patience]\n",
            "pressure 'rush': unknown trait 'patience'",
        ),
    ],
)
def test_bad_user_files_name_file_and_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(BenrlError) as err:
        load_taxonomy(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(BenrlError, match="not found"):
        load_taxonomy(tmp_path / "nope.yaml")


def test_validate_names_lists_known_names():
    validate_names(traits=["corrigibility"], domains=["math"], pressures=["loophole"])
    with pytest.raises(BenrlError, match=r"config\.yaml: unknown domain 'poetry' \(known: health"):
        validate_names(domains=["poetry"], where="config.yaml")
    with pytest.raises(BenrlError, match=r"unknown trait 'honesty'.*truthfulness"):
        validate_names(traits=["honesty"])
    with pytest.raises(BenrlError, match="unknown pressure 'nagging'"):
        validate_names(pressures=["nagging"])
