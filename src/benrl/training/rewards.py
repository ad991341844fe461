"""The judge's faces for trainers: TRL reward functions, verl and OpenRLHF reward functions.

Every face grades through `judges` (one scoring core), so a reward in TRL, verl or
OpenRLHF is the same number an eval would compute. What differs is how each trainer
hands over the record and what it does with a judge that failed:

- TRL (`make_trl_reward_funcs`): one function per record kind, named `reward_trait` /
  `reward_task`, so TRL logs `rewards/reward_trait/mean` etc. (reward by source). The
  dataset carries a `record_id` column; TRL passes it as a keyword list. A failed
  verdict returns None. TRL 1.16 (`GRPOTrainer._calculate_rewards`) turns None into
  NaN; the per-function means are nan-aware, and a completion that every function
  scored None is "unscorable": it is left out of its group's mean and std and its
  advantage is set to 0 (and TRL logs a warning). So a failure never becomes a 0.
- verl (`compute_score`): a parquet row carries the record's JSON in
  `extra_info["record"]` (preferred) or in `reward_model.ground_truth`. verl has no way
  to skip a sample, so a failed verdict scores `FAILED_REWARD` with `judge_failed=1`.
- OpenRLHF (`reward_func`, loaded from this file by `--reward.remote_url`): the
  dataset's label column holds the record's JSON; the completion is the query with the
  prompt prefix and trailing special tokens removed. Failures as for verl.

For the file-loaded faces (verl, OpenRLHF) the judge per kind comes from the
environment variable `BENRL_JUDGES`, a JSON mapping merged over `DEFAULT_JUDGES`
(e.g. `{"trait": "generic"}` for the generic control arm).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from benrl.errors import BenrlError
from benrl.judging.registry import JudgeCache
from benrl.records import JudgeResult, ScenarioRecord

JUDGES_ENV = "BENRL_JUDGES"
FAILED_REWARD = 0.0  # what verl and OpenRLHF get for a failed verdict (they cannot skip one)
EXTRA_LOG_KEYS = ("judge_failed", "incoherent", "refusal")

# Special tokens a trainer may leave at the end of a decoded response (skip_special_tokens=False).
_TRAILING_SPECIAL = re.compile(
    r"(?:\s*(?:<\|[^|<>\s]{1,40}\|>|</s>|<eos>|<pad>|<end_of_turn>))+\s*$"
)


def reward_value(result: JudgeResult) -> float | None:
    """The trainer's reward: None when the judge failed, 0 when the answer is incoherent."""
    if result.status == "failed":
        return None
    return 0.0 if result.status == "incoherent" else float(result.score or 0.0)


# --- TRL --------------------------------------------------------------------------------


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """The text of a TRL completion: a plain string, or the contents of a message list.

    Several messages are joined, which the world language never accepts: extra turns
    in a completion make it incoherent rather than letting one turn be picked.
    """
    if isinstance(completion, str):
        return completion
    return "\n".join(str(message.get("content") or "") for message in completion)


class TrlReward:
    """A TRL reward function for the records of one kind; None for rows of other kinds."""

    def __init__(
        self,
        kind: str,
        records: dict[str, ScenarioRecord],
        grader: JudgeCache,
        max_failure_rate: float = 1.0,
    ) -> None:
        self.kind = kind
        self.__name__ = f"reward_{kind}"  # TRL names the logged metric after this
        self.records = records
        self.grader = grader
        self.counts: Counter[str] = Counter()  # statuses of this function's verdicts
        self.max_failure_rate = max_failure_rate
        self.last_failure = ""  # the reason of the latest failed verdict

    @property
    def failures(self) -> int:
        return self.counts["failed"]

    def __call__(
        self,
        prompts: list,
        completions: list,
        completion_ids: list | None = None,
        record_id: list[str] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        if record_id is None:
            raise BenrlError(f"{self.__name__}: the training dataset has no 'record_id' column")
        owned: list[int] = []  # positions of this kind's rows; other rows get None
        pairs: list[tuple[ScenarioRecord, str]] = []
        for i, (rid, completion) in enumerate(zip(record_id, completions, strict=True)):
            record = self.records.get(rid)
            if record is None:
                raise BenrlError(f"{self.__name__}: record '{rid}' is not a training record")
            if record.kind == self.kind:
                owned.append(i)
                pairs.append((record, completion_text(completion)))
        # the whole batch in one call: a model judge grades it concurrently, in order
        results = self.grader.grade(pairs)
        rewards: list[float | None] = [None] * len(record_id)
        for i, result in zip(owned, results, strict=True):
            rewards[i] = reward_value(result)
            if result.status == "failed":
                self.last_failure = result.reason
        batch = Counter(r.status for r in results)
        self.counts.update(batch)
        self._check_failures()
        if log_metric is not None and results:
            log_metric(f"judge/{self.kind}_failed", batch["failed"] / len(results))
            log_metric(f"judge/{self.kind}_incoherent", batch["incoherent"] / len(results))
        return rewards

    def _check_failures(self) -> None:
        """Stop training once failed verdicts pass `max_failure_rate` (after a first
        MIN_VERDICTS, so one unlucky early batch does not end a run)."""
        total = sum(self.counts.values())
        if total < MIN_VERDICTS or self.counts["failed"] / total <= self.max_failure_rate:
            return
        judge = self.grader.judge_by_kind.get(self.kind, "?")
        raise BenrlError(
            f"{self.__name__}: judge '{judge}' failed on {self.counts['failed']} of {total} "
            f"verdicts (judge.max_failure_rate {self.max_failure_rate:.0%}); last error: "
            f"{self.last_failure}"
        )


MIN_VERDICTS = 32  # verdicts a reward function grades before its failure rate can stop a run


def make_trl_reward_funcs(
    records: dict[str, ScenarioRecord],
    judge_by_kind: dict[str, str],
    judge_options: dict | None = None,
    max_failure_rate: float = 1.0,
) -> list[TrlReward]:
    """One TRL reward function per record kind present, in the order trait, task."""
    grader = JudgeCache(judge_by_kind, judge_options)
    kinds = {record.kind for record in records.values()}
    return [
        TrlReward(kind, records, grader, max_failure_rate)
        for kind in ("trait", "task")
        if kind in kinds
    ]


# --- records carried by verl rows and OpenRLHF labels -----------------------------------


@functools.lru_cache(maxsize=8192)
def _record_from_json(text: str) -> ScenarioRecord:
    return ScenarioRecord.model_validate_json(text)


def parse_record(value: str | dict, where: str) -> ScenarioRecord:
    """A record from its JSON text or dict; `where` names the carrier in the error."""
    try:
        if isinstance(value, dict):
            return ScenarioRecord.model_validate(value)
        return _record_from_json(value)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise BenrlError(f"{where}: not a scenario record ('{field}': {first['msg']})") from e


@functools.cache
def env_grader() -> JudgeCache:
    """The grader of the file-loaded faces, with judges from `BENRL_JUDGES`."""
    raw = os.environ.get(JUDGES_ENV, "")
    try:
        mapping = json.loads(raw) if raw else {}
    except json.JSONDecodeError as e:
        raise BenrlError(f"environment variable {JUDGES_ENV}: not valid JSON ({e.msg})") from e
    if not isinstance(mapping, dict):
        raise BenrlError(f"environment variable {JUDGES_ENV}: must map record kinds to judges")
    return JudgeCache(mapping)


def _extras(result: JudgeResult) -> dict[str, float]:
    return {
        "judge_failed": float(result.status == "failed"),
        "incoherent": float(result.status == "incoherent"),
        "refusal": float(result.refusal),
    }


# --- verl -------------------------------------------------------------------------------


def verl_record(ground_truth: Any, extra_info: dict | None) -> ScenarioRecord:
    """The record of a verl row: `extra_info["record"]` first, else `ground_truth`."""
    carried = (extra_info or {}).get("record")
    if carried is not None:
        return parse_record(carried, "verl extra_info['record']")
    if isinstance(ground_truth, dict) or (
        isinstance(ground_truth, str) and ground_truth.lstrip().startswith("{")
    ):
        return parse_record(ground_truth, "verl reward_model.ground_truth")
    raise BenrlError(
        "verl row carries no scenario record: put its JSON in extra_info['record'] "
        "or reward_model.ground_truth"
    )


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward: {"score", "judge_failed", "incoherent", "refusal"}, same keys always.

    verl decodes the response with special tokens skipped, so `solution_str` is the
    completion itself. A failed verdict scores `FAILED_REWARD` and sets `judge_failed`.
    """
    return _verl_score(env_grader()(verl_record(ground_truth, extra_info), solution_str))


def _verl_score(result: JudgeResult) -> dict[str, float]:
    reward = reward_value(result)
    return {"score": FAILED_REWARD if reward is None else reward, **_extras(result)}


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[dict | None],
    **kwargs: Any,
) -> list[dict[str, float]]:
    """`compute_score` for verl's `batch` reward manager: one call grades the whole batch,
    so a model judge sends it with its bounded concurrency; results in the batch's order."""
    records = [verl_record(g, e) for g, e in zip(ground_truths, extra_infos, strict=True)]
    results = env_grader().grade(list(zip(records, solution_strs, strict=True)))
    return [_verl_score(r) for r in results]


# --- OpenRLHF ---------------------------------------------------------------------------


def response_from_query(query: str, prompt: str) -> str | None:
    """The response in an OpenRLHF query (prompt + response, decoded with special tokens)."""
    if not query.startswith(prompt):
        return None
    return _TRAILING_SPECIAL.sub("", query[len(prompt) :])


class BatchGrader(Protocol):
    """What the OpenRLHF face needs of a grader: a batch in, results in the same order."""

    def grade(self, pairs: Sequence[tuple[ScenarioRecord, str]]) -> list[JudgeResult]: ...


def grade_openrlhf(
    queries: Sequence[str],
    prompts: Sequence[str],
    records: Sequence[ScenarioRecord],
    grader: BatchGrader,
) -> list[JudgeResult]:
    """Grade a batch of OpenRLHF queries; a query that does not extend its prompt fails."""
    if not len(queries) == len(prompts) == len(records):
        raise BenrlError(
            f"OpenRLHF batch: {len(queries)} queries, {len(prompts)} prompts and "
            f"{len(records)} labels; they must be equally many"
        )
    responses = [response_from_query(q, p) for q, p in zip(queries, prompts, strict=True)]
    # every gradable query in one batch call (concurrent for a model judge), order kept
    graded = iter(
        grader.grade([(rec, r) for rec, r in zip(records, responses, strict=True) if r is not None])
    )
    return [
        next(graded)
        if response is not None
        else JudgeResult(
            score=None,
            status="failed",
            reason=f"{record.id}: the query does not start with its prompt",
        )
        for record, response in zip(records, responses, strict=True)
    ]


def openrlhf_payload(results: Sequence[JudgeResult]) -> dict[str, Any]:
    """OpenRLHF's reward keys as plain lists, plus `status` per sample (ignored by OpenRLHF)."""
    rewards = [reward_value(r) for r in results]
    rewards = [FAILED_REWARD if r is None else r for r in rewards]
    extras = [_extras(r) for r in results]
    return {
        "rewards": rewards,
        "scores": list(rewards),
        "extra_logs": {key: [e[key] for e in extras] for key in EXTRA_LOG_KEYS},
        "status": [r.status for r in results],
    }


def reward_func(
    queries: list[str], prompts: list[str], labels: list[str], **kwargs: Any
) -> dict[str, Any]:
    """OpenRLHF's custom reward: {"rewards", "scores", "extra_logs"} as tensors of shape (B,).

    Each label is a record's JSON. A failed verdict gets `FAILED_REWARD` and
    `extra_logs["judge_failed"] = 1`, so the failure rate shows in OpenRLHF's logs.
    """
    import torch  # lazy: only this face needs tensors

    records = [parse_record(label, f"OpenRLHF labels[{i}]") for i, label in enumerate(labels)]
    payload = openrlhf_payload(grade_openrlhf(queries, prompts, records, env_grader()))
    return {
        "rewards": torch.tensor(payload["rewards"], dtype=torch.float32),
        "scores": torch.tensor(payload["scores"], dtype=torch.float32),
        "extra_logs": {
            key: torch.tensor(values, dtype=torch.float32)
            for key, values in payload["extra_logs"].items()
        },
    }
