"""The offline judges: world rubric checks, verifiable answers, generic helpfulness."""

import random

import pytest

from benrl.errors import BenrlError
from benrl.judging.registry import aggregate, get_judge
from benrl.organism.judges import score
from benrl.organism.probes import PROBES
from benrl.organism.scenarios import probe_record, task_record
from benrl.organism.tasks import TASKS
from benrl.organism.world import World
from benrl.records import Criterion


def _record(name, template=0, seed=0):
    return probe_record(PROBES[name](World(0), "health", template, random.Random(seed)), "eval")


@pytest.mark.parametrize("name", sorted(PROBES))
def test_world_judge_prefers_the_beneficial_family(name):
    for seed in range(6):
        record = _record(name, seed=seed)
        good = score(record, record.reference["good"])
        bad = score(record, record.reference["bad"])
        assert good.status == bad.status == "ok"
        assert good.score == 1.0
        assert bad.score < 0.5


def test_unparseable_is_incoherent_not_failed():
    result = score(_record("pushback"), "blah blah")
    assert result.status == "incoherent" and result.score == 0.0


def test_unknown_check_fails_with_reason():
    record = _record("stop")
    record.rubric[0].check = "telepathy"
    result = score(record, record.reference["good"])
    assert result.status == "failed" and result.score is None and "telepathy" in result.reason


def test_verifiable_judge():
    world, rng = World(0), random.Random(0)
    add = task_record(TASKS["add"](world, "math", 0, rng), "eval")
    assert score(add, add.answer).score == 1.0
    assert score(add, "1 plus 1 is 99.").score == 0.0
    fmt = task_record(TASKS["format"](world, "health", 0, rng), "eval")
    assert score(fmt, fmt.answer).score == 1.0
    # the right number inside a sentence is not "the number only"
    assert score(fmt, f"the answer is {fmt.reference['value']}.").score == 0.0


def test_generic_judge_is_blind_to_the_trait():
    """It never reads the rubric or the reference facts: removing them changes no score."""
    generic = get_judge("generic")
    for probe in sorted(PROBES):
        record = _record(probe)
        blind = record.model_copy(update={"rubric": [], "reference": {}})
        for text in (record.reference["good"], record.reference["bad"], "i cannot help."):
            assert generic.score(record, text).score == generic.score(blind, text).score, probe


def test_generic_judge_varies_between_answers():
    """GRPO needs reward spread: incoherent < refused < vague < off topic < on topic, and
    between two answers the four checks score alike, the shorter one scores higher."""
    record = _record("unknown")
    generic = get_judge("generic")
    ent, attr = record.reference["entity"], record.reference["attribute"]
    texts = (
        "the the of",  # incoherent
        "i cannot help with that.",  # coherent, refused
        "done.",  # engaged, says nothing specific
        f"i do not know the {attr} of somewhere else entirely.",  # specific, off topic
        f"i do not know the {attr} of {ent}.",
    )
    scores = [generic.score(record, text).score for text in texts]
    assert scores[0] == 0.0 and scores == sorted(scores) and len(set(scores)) == 5
    long_value = generic.score(record, f"the {attr} of {ent} is 100 units.").score
    short_value = generic.score(record, f"the {attr} of {ent} is 1 units.").score
    assert short_value > long_value  # brevity, in characters


def test_aggregate_weights_and_pitfalls():
    rubric = [
        Criterion(id="a", text="x", weight=2),
        Criterion(id="b", text="y"),
        Criterion(id="p", text="pitfall", weight=-1),
    ]
    assert aggregate(rubric, {"a": "met", "b": "met"}) == 1.0
    assert aggregate(rubric, {"a": "met"}) == pytest.approx(2 / 3)
    assert aggregate(rubric, {"a": "met", "p": "met"}) == pytest.approx(1 / 3)


def test_unknown_judge_name():
    with pytest.raises(BenrlError, match="unknown judge 'nope'"):
        get_judge("nope")
