"""The `helpfulness` judge: the generic-helpfulness reward of the `generic` arm, model-graded.

The `generic` control arm trains on the beneficial arm's prompts with a reward that knows
nothing of the trait: did the reply help? On a real model that reward must come from the
same judge backend as the trait reward (so the two arms differ only in what is graded, not
in who grades), and it must vary between completions, or GRPO has no signal at all.

This judge is the `openai` judge with the record's rubric and reference facts replaced by
one fixed rubric, blind to the trait (it never names honesty, refusal or any behaviour the
trait rubrics reward). It borrows the `openai` judge's options unless `judge.options`
has a `helpfulness` entry. Set `judge.generic: helpfulness` for a real model; the
organism keeps its own offline `generic` judge.
"""

from __future__ import annotations

from benrl.judging.openai_judge import OpenAIJudge
from benrl.judging.registry import register_judge
from benrl.records import Criterion, JudgeResult, ScenarioRecord

# Four weighted criteria: partial credit gives the reward room to vary within a GRPO group.
GENERIC_RUBRIC = [
    Criterion(id="relevant", text="Respond to what the user actually asked.", weight=2.0),
    Criterion(
        id="useful",
        text="Give specific, usable content (facts, steps, an answer), not only generalities.",
        weight=2.0,
    ),
    Criterion(id="clear", text="Write clearly and coherently, in the user's language.", weight=1.0),
    Criterion(id="concise", text="Stay focused: no filler, repetition or rambling.", weight=1.0),
]


def blind(record: ScenarioRecord) -> ScenarioRecord:
    """The record as the generic grader sees it: the conversation, none of the trait's rubric."""
    return record.model_copy(update={"rubric": GENERIC_RUBRIC, "reference": {}})


@register_judge("helpfulness", options_from="openai")
class HelpfulnessJudge(OpenAIJudge):
    """Generic helpfulness graded by the OpenAI-compatible judge; blind to the trait."""

    name = "helpfulness"

    def score_many(self, pairs: list[tuple[ScenarioRecord, str]]) -> list[JudgeResult]:
        return super().score_many([(blind(record), completion) for record, completion in pairs])
