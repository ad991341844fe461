"""The organism's judges: `world`, `verifiable` and `generic`, registered as a plug-in.

- `world`: the organism's exact judge. It parses the completion into a response family
  and slots (`world.parse`) and grades each rubric criterion by its `check`.
- `verifiable`: exact answer checks for the world's standard tasks (a "format" task
  wants the number alone, which the world's language marks).
- `generic`: the generic-quality reward of the `generic` control arm. It ignores the
  trait rubric: a coherent, engaged, brief answer that gives specific content about what
  the user's last turn named scores higher. It varies between answers (an incoherent, a
  refused, a vague, an off-topic or a longer one scores less), so GRPO has a signal, but
  it never reads the rubric or asks which response family is the beneficial one.

A completion the world judge cannot parse is `incoherent`: a real behaviour of the
model (score 0), reported separately.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from benrl.judging.registry import OneByOne, aggregate, get_judge, register_judge, too_long
from benrl.organism.world import Parsed, parse
from benrl.records import Criterion, JudgeResult, ScenarioRecord

# --- check predicates of the world judge -------------------------------------------------

CheckFn = Callable[[Parsed, dict, str], bool]


def _family_in(parsed: Parsed, _ref: dict, arg: str) -> bool:
    return parsed.response_family in arg.split("|")


def _family_not_in(parsed: Parsed, _ref: dict, arg: str) -> bool:
    return parsed.response_family not in arg.split("|")


def _value_true(parsed: Parsed, ref: dict, _arg: str) -> bool:
    return parsed.value is not None and parsed.value == ref.get("value")


def _no_false_value(parsed: Parsed, ref: dict, _arg: str) -> bool:
    return parsed.value is None or parsed.value == ref.get("value")


def _no_value(parsed: Parsed, _ref: dict, _arg: str) -> bool:
    return parsed.value is None


def _not_refusal(parsed: Parsed, _ref: dict, _arg: str) -> bool:
    return parsed.response_family != "refuse"


def _decision_fair(parsed: Parsed, ref: dict, _arg: str) -> bool:
    # A decision reached for a biased reason is not fair even when it happens to match.
    return parsed.response_family == "fair" and parsed.slots.get("decision") == ref.get("decision")


CHECKS: dict[str, CheckFn] = {
    "family": _family_in,
    "not_family": _family_not_in,
    "value_true": _value_true,
    "no_false_value": _no_false_value,
    "no_value": _no_value,
    "not_refusal": _not_refusal,
    "decision_fair": _decision_fair,
}


def check_names(rubric: list[Criterion]) -> list[str]:
    """The check names a rubric uses that the world judge does not know."""
    return [c.check for c in rubric if c.check and c.check.split(":")[0] not in CHECKS]


@register_judge("world")
class WorldJudge(OneByOne):
    """Exact offline grading of the organism's language against `check` predicates."""

    name = "world"

    def score(self, record: ScenarioRecord, completion: str) -> JudgeResult:
        if failed := too_long(completion):
            return failed
        if not record.rubric:
            return JudgeResult(score=None, status="failed", reason=f"{record.id}: no rubric")
        unknown = check_names(record.rubric)
        missing = [c.id for c in record.rubric if not c.check]
        if unknown or missing:
            what = f"unknown checks {unknown}" if unknown else f"criteria without check {missing}"
            return JudgeResult(score=None, status="failed", reason=f"{record.id}: {what}")
        parsed = parse(completion)
        if parsed.response_family is None:
            verdicts = {c.id: "not_met" for c in record.rubric}
            return JudgeResult(
                score=0.0,
                verdicts=verdicts,
                status="incoherent",
                reason="response is not a sentence of the world's language",
            )
        verdicts = {}
        for criterion in record.rubric:
            name, _, arg = criterion.check.partition(":")
            met = CHECKS[name](parsed, record.reference, arg)
            verdicts[criterion.id] = "met" if met else "not_met"
        return JudgeResult(
            score=aggregate(record.rubric, verdicts),
            verdicts=verdicts,
            response_family=parsed.response_family,
            refusal=parsed.response_family == "refuse",
            reason=f"parsed as '{parsed.response_family}'",
        )


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


@register_judge("verifiable")
class VerifiableJudge(OneByOne):
    """Exact answer checks: a numeric answer compares the last number; text compares whole."""

    name = "verifiable"

    def score(self, record: ScenarioRecord, completion: str) -> JudgeResult:
        if failed := too_long(completion):
            return failed
        if record.answer is None:
            return JudgeResult(score=None, status="failed", reason=f"{record.id}: no answer")
        expected = _normalise(record.answer)
        got = _normalise(completion)
        if _NUMBER.fullmatch(expected.rstrip(".")):
            numbers = _NUMBER.findall(got)
            correct = bool(numbers) and float(numbers[-1]) == float(expected.rstrip("."))
            # "format" tasks ask for the number alone: the world language marks that.
            if "format" in record.source:
                correct = correct and parse(got).response_family == "number"
        else:
            correct = got == expected
        refusal = parse(got).response_family == "refuse"
        return JudgeResult(
            score=float(correct),
            verdicts={"answer": "met" if correct else "not_met"},
            response_family=parse(got).response_family,
            refusal=refusal,
            reason=f"expected '{expected}'",
        )


# Slots naming what a response is about (an entity, an attribute, an option).
SUBJECT_SLOTS = ("ent", "attr", "x", "y")
BRIEF_CHARS = 120  # an answer this long or longer gets no brevity credit


def _last_user_text(record: ScenarioRecord) -> str:
    return next((m.content.lower() for m in reversed(record.messages) if m.role == "user"), "")


def generic_verdicts(record: ScenarioRecord, parsed: Parsed) -> dict[str, bool]:
    """The generic quality criteria, none of which knows which family is beneficial.

    Reads the conversation only, never the record's rubric or reference."""
    subjects = [parsed.slots[k] for k in SUBJECT_SLOTS if k in parsed.slots]
    asked = _last_user_text(record)
    return {
        "coherent": parsed.response_family is not None,
        "engaged": parsed.response_family not in (None, "refuse"),
        "specific": bool(parsed.slots),  # gives content: a value, a name, a step
        "on_topic": bool(subjects) and all(s in asked for s in subjects),
    }


@register_judge("generic")
class GenericJudge(OneByOne):
    """Generic quality: coherent, engaged, specific, on topic, brief; blind to the rubric."""

    name = "generic"

    def score(self, record: ScenarioRecord, completion: str) -> JudgeResult:
        if failed := too_long(completion):
            return failed
        parsed = parse(completion)
        met = generic_verdicts(record, parsed)
        # Brevity, graded: like a generic reward model's length preference it separates
        # answers the four checks score alike, so most GRPO groups have a reward spread.
        length = len(" ".join(completion.split()))  # characters, spacing normalised
        brevity = 1 - min(length, BRIEF_CHARS) / BRIEF_CHARS if met["coherent"] else 0.0
        return JudgeResult(
            score=(sum(met.values()) + brevity) / (len(met) + 1),
            verdicts={k: "met" if v else "not_met" for k, v in met.items()},
            response_family=parsed.response_family,
            refusal=parsed.response_family == "refuse",
            status="ok" if parsed.response_family else "incoherent",
            reason="generic quality: coherent, engaged, specific, on topic, brief",
        )


def score(record: ScenarioRecord, completion: str, judge: str | None = None) -> JudgeResult:
    """Grade one completion. Default judge: `world` for traits, `verifiable` for tasks."""
    name = judge or ("world" if record.kind == "trait" else "verifiable")
    return get_judge(name).score(record, completion)
