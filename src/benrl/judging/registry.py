"""The scoring core: the judge registry and the judge cache every reward and eval goes through.

Training with TRL, verl or OpenRLHF and evaluating all grade through a judge registered
here, so a reward is the same number an eval computes. A judge grades one item
(`score`) or a batch (`score_many`; a model judge sends a batch concurrently, at most
its `concurrency` requests in flight, results in input order). Callers hand whole batches
to `JudgeCache.grade` / `grade_routed` (TRL's reward batch, an eval stage's answers, an
OpenRLHF request), which split them by judge and keep the order. A judge
that cannot grade returns status `failed` with score None (trainers skip it, evals
count it), never a silent 0.

Judges register with `@register_judge("name")`. This package's own judges (real-data
scorers, the OpenAI-compatible judge) load on first lookup; plug-ins (the organism's
`world`, `verifiable` and `generic` judges) load through `benrl.plugins`.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from benrl.errors import BenrlError
from benrl.plugins import load_plugins
from benrl.records import Criterion, JudgeResult, ScenarioRecord

MAX_COMPLETION_CHARS = 20_000  # longer completions are graded on nothing: status failed
DEFAULT_JUDGES = {"trait": "world", "task": "verifiable"}  # judge name per record kind

Pair = tuple[ScenarioRecord, str]


class Judge(Protocol):
    name: str
    # True when grading waits on something else (a model endpoint): callers that serve
    # many clients grade it off their event loop; a pure-CPU judge is graded in place.
    waits_on_io: bool

    def score(self, record: ScenarioRecord, completion: str) -> JudgeResult: ...

    def score_many(self, pairs: Sequence[Pair]) -> list[JudgeResult]: ...


class OneByOne:
    """Base of judges that grade one item at a time: a batch is a loop."""

    name = ""
    waits_on_io = False

    def score(self, record: ScenarioRecord, completion: str) -> JudgeResult:
        raise NotImplementedError

    def score_many(self, pairs: Sequence[Pair]) -> list[JudgeResult]:
        return [self.score(record, completion) for record, completion in pairs]


JUDGES: dict[str, Callable[..., Judge]] = {}

# Modules of this package that register more judges, imported on first need.
BUILTIN_MODULES = (
    "benrl.judging.scorers",
    "benrl.judging.openai_judge",
    "benrl.judging.helpfulness",
)


# judge name -> the judge whose config options it uses when it has none of its own
OPTIONS_FROM: dict[str, str] = {}


def register_judge(name: str, options_from: str | None = None) -> Callable[[type], type]:
    """Register a judge class under `name`; it is built with the judge's config options.

    `options_from` names a judge whose options it borrows when `judge.options` has no
    entry for `name` (the `helpfulness` judge talks to the `openai` judge's endpoint).
    """

    def decorate(cls: type) -> type:
        cls.name = name
        JUDGES[name] = cls
        if options_from:
            OPTIONS_FROM[name] = options_from
        return cls

    return decorate


def judge_options(name: str, options: Mapping[str, dict]) -> dict:
    """The constructor options of judge `name`: its own entry, else the one it borrows."""
    if name in options:
        return dict(options[name])
    return dict(options.get(OPTIONS_FROM.get(name, ""), {}))


def known_judges() -> list[str]:
    load_plugins()
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return sorted(JUDGES)


def get_judge(name: str, **options: object) -> Judge:
    if name not in JUDGES:
        known_judges()
    if name not in JUDGES:
        raise BenrlError(f"unknown judge '{name}' (known: {', '.join(sorted(JUDGES))})")
    return JUDGES[name](**options)


def aggregate(rubric: list[Criterion], verdicts: dict[str, str]) -> float:
    """Weighted rubric score in [0, 1]; negative weights are pitfalls that subtract."""
    positive = sum(c.weight for c in rubric if c.weight > 0)
    if positive <= 0:
        raise BenrlError("rubric has no criterion with a positive weight")
    earned = sum(c.weight for c in rubric if verdicts.get(c.id) == "met")
    return min(1.0, max(0.0, earned / positive))


def too_long(completion: str) -> JudgeResult | None:
    """A `failed` result for a completion past `MAX_COMPLETION_CHARS`, else None."""
    if len(completion) > MAX_COMPLETION_CHARS:
        reason = f"completion longer than {MAX_COMPLETION_CHARS} characters"
        return JudgeResult(score=None, status="failed", reason=reason)
    return None


def judge_for(record: ScenarioRecord, judge_by_kind: Mapping[str, str]) -> str:
    """The judge name for a record: by source first, then by kind."""
    return judge_by_kind.get(record.source.split("/")[0], judge_by_kind.get(record.kind, ""))


class JudgeCache:
    """Judges built once per name with their config options, shared by one stage's grading.

    `judge_by_kind` maps a record kind (trait | task), or a source prefix, to a judge
    name; `counts` tallies result statuses ("ok", "incoherent", "failed").
    """

    def __init__(
        self,
        judge_by_kind: Mapping[str, str] | None = None,
        judge_options: Mapping[str, dict] | None = None,
    ) -> None:
        self.judge_by_kind = {**DEFAULT_JUDGES, **(judge_by_kind or {})}
        self.judge_options = dict(judge_options or {})  # judge name -> constructor options
        self._judges: dict[str, Judge] = {}
        self.counts: Counter[str] = Counter()

    def get(self, name: str) -> Judge:
        if name not in self._judges:
            if name not in JUDGES:
                known_judges()  # registers OPTIONS_FROM of the built-in judges
            self._judges[name] = get_judge(name, **judge_options(name, self.judge_options))
        return self._judges[name]

    def for_kind_name(self, kind: str) -> str:
        """The judge name of a record kind (trait | task), or `kind` itself if it names a judge.

        An eval names a kind (graded by the config's judge of that kind) or, as the public
        datasets do, a judge of its own (`refusal`, `multiple_choice`, ...).
        """
        if kind in self.judge_by_kind:
            return self.judge_by_kind[kind]
        if kind in JUDGES or kind in known_judges():
            return kind
        raise BenrlError(f"no judge for kind '{kind}' (kinds: {', '.join(self.judge_by_kind)})")

    @property
    def waits_on_io(self) -> bool:
        """Whether any of its judges waits on I/O (a judge that does not say is assumed to)."""
        return any(getattr(self.for_kind(k), "waits_on_io", True) for k in self.judge_by_kind)

    def for_kind(self, kind: str) -> Judge:
        """The judge of a record kind (trait | task), or the judge named `kind` itself."""
        return self.get(self.for_kind_name(kind))

    def __call__(self, record: ScenarioRecord, completion: str) -> JudgeResult:
        """Grade one completion with the judge its record's source or kind maps to."""
        return self.grade([(record, completion)])[0]

    def grade(self, pairs: Sequence[Pair]) -> list[JudgeResult]:
        """Grade a batch, each pair by the judge its record's source or kind maps to."""
        return self.grade_routed([(judge_for(r, self.judge_by_kind), r, c) for r, c in pairs])

    def score_many(self, kind: str, pairs: Sequence[Pair]) -> list[JudgeResult]:
        """Grade a batch with the judge of `kind` (one batch call: concurrent for a model judge)."""
        name = self.for_kind_name(kind)
        return self.grade_routed([(name, r, c) for r, c in pairs])

    def grade_routed(self, jobs: Sequence[tuple[str, ScenarioRecord, str]]) -> list[JudgeResult]:
        """Grade (judge name, record, completion) jobs; results in the jobs' order.

        Each judge gets its share as ONE `score_many` call, so a model judge sends it
        with its bounded concurrency; the results are put back in the input order, so
        they do not depend on the concurrency or on which answer came back first.
        """
        positions: dict[str, list[int]] = {}
        for i, (name, _, _) in enumerate(jobs):
            positions.setdefault(name, []).append(i)
        results: list[JudgeResult | None] = [None] * len(jobs)
        for name, where in positions.items():
            graded = self.get(name).score_many([jobs[i][1:] for i in where])
            if len(graded) != len(where):  # a plug-in judge breaking the protocol
                raise BenrlError(
                    f"judge '{name}' returned {len(graded)} results for {len(where)} items"
                )
            for i, result in zip(where, graded, strict=True):
                results[i] = result
        done = [r for r in results if r is not None]
        self.counts.update(r.status for r in done)
        return done
