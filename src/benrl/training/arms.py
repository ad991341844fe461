"""RL arms and their data mixtures (arm names are a contract, see docs/architecture.md).

An arm is a pool of trait scenarios, a trait fraction and a reward for trait rows; one
`ArmSpec` per arm is the single source of what it trains on, used by the mixture, the
trainer, the exporters and the report:

| arm                | trait pool                    | trait fraction | trait reward |
|--------------------|-------------------------------|----------------|--------------|
| baseline           | none                          | 0              | -            |
| beneficial         | all train trait scenarios     | config (5%)    | rubric       |
| generic            | the same rows as beneficial   | config (5%)    | generic      |
| health_only        | health-domain trait scenarios | config (5%)    | rubric       |
| no_health_science  | trait scenarios outside them  | config (5%)    | rubric       |

With `train.hold_out_traits` (the paper's split, on by default), every pool drops the
trait scenarios that touch a held-out trait (`evaluation/split.py`): no arm ever trains
on them, and the mixture checks it. Trait rows are drawn evenly over the pool's probes
(a scenario's source without its template, e.g. `loophole`), so every trained probe gets
its share of the dose; the arm's manifest records the rows per probe.

The rest of every batch is standard tasks. The mixture is deterministic: for a seed,
the exact rows of every step are fixed (TRL's own shuffling is switched off), which
makes the data order identical after a resume, and gives `generic` exactly the prompts
`beneficial` sees. Every arm gets the same number of rows, so the same compute.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from benrl.config import JudgeConfig
from benrl.errors import BenrlError
from benrl.records import ScenarioRecord


@dataclass(frozen=True)
class ArmSpec:
    name: str
    pool: str  # name of the trait pool; it keys the mixture's rng, so equal pools draw equal rows
    trait_reward: Literal["trait", "generic"]  # JudgeConfig field that grades trait rows
    trains_traits: bool = True
    only_domains: frozenset[str] | None = None  # trait rows only from these domains
    except_domains: frozenset[str] = frozenset()  # trait rows never from these domains

    def takes(self, record: ScenarioRecord) -> bool:
        """Whether a trait record belongs to this arm's pool."""
        if not self.trains_traits or record.kind != "trait":
            return False
        if self.only_domains is not None and record.domain not in self.only_domains:
            return False
        return record.domain not in self.except_domains

    def trained_domains(self, all_domains: Iterable[str]) -> set[str]:
        """The domains whose trait scenarios this arm trains on."""
        if not self.trains_traits:
            return set()
        domains = set(all_domains) if self.only_domains is None else set(self.only_domains)
        return domains - self.except_domains

    def judges(self, judge: JudgeConfig) -> dict[str, str]:
        """Judge name per record kind for this arm's rewards."""
        return {"trait": getattr(judge, self.trait_reward), "task": judge.task}


ARM_SPECS = {
    "baseline": ArmSpec("baseline", "none", "trait", trains_traits=False),
    "beneficial": ArmSpec("beneficial", "all", "trait"),
    "generic": ArmSpec("generic", "all", "generic"),
    "health_only": ArmSpec("health_only", "health", "trait", only_domains=frozenset({"health"})),
    "no_health_science": ArmSpec(
        "no_health_science",
        "no_health_science",
        "trait",
        except_domains=frozenset({"health", "science"}),
    ),
}


def arm_spec(arm: str) -> ArmSpec:
    """The spec of a trained arm; an unknown name is an error, never a default."""
    if arm not in ARM_SPECS:
        raise BenrlError(f"unknown arm '{arm}' (trained arms: {', '.join(ARM_SPECS)})")
    return ARM_SPECS[arm]


def probe_of(record: ScenarioRecord) -> str:
    """The probe a trait scenario instantiates: its source without the template or item."""
    return record.source.rsplit("/", 1)[0]


def build_mixture(
    records: list[ScenarioRecord],
    arm: str,
    rows: int,
    trait_fraction: float,
    seed: int,
    held_out: frozenset[str] = frozenset(),
) -> list[ScenarioRecord]:
    """The arm's training rows in order (step k uses rows k*P .. (k+1)*P-1).

    Trait records touching a trait of `held_out` never enter the pool.
    """
    spec = arm_spec(arm)
    tasks = [r for r in records if r.kind == "task"]
    pool = [r for r in records if spec.takes(r) and not held_out.intersection(r.traits)]
    n_trait = round(rows * trait_fraction) if spec.trains_traits else 0
    if not tasks and n_trait < rows:
        raise BenrlError(f"arm '{arm}': the mixture needs standard tasks and there are none")
    if n_trait and not pool:
        raise BenrlError(f"arm '{arm}': trait pool '{spec.pool}' has no records")
    # The rng is keyed by the pool, not the arm, so `generic` draws beneficial's rows.
    rng = random.Random(f"mixture-{spec.pool}-{seed}")
    chosen = _even_draw(pool, n_trait, rng)
    chosen += [tasks[rng.randrange(len(tasks))] for _ in range(rows - n_trait)]
    rng.shuffle(chosen)
    leaked = sorted({probe_of(r) for r in chosen if held_out.intersection(r.traits)})
    if leaked:  # the filter above makes this impossible; a change that breaks it must fail
        raise BenrlError(f"arm '{arm}': held-out probes {leaked} entered the RL data")
    return chosen


def _even_draw(pool: list[ScenarioRecord], n: int, rng: random.Random) -> list[ScenarioRecord]:
    """n rows drawn evenly over the pool's probes (the remainder to probes drawn at random)."""
    if not n:
        return []
    by_probe: dict[str, list[ScenarioRecord]] = {}
    for record in pool:
        by_probe.setdefault(probe_of(record), []).append(record)
    probes = sorted(by_probe)
    counts = dict.fromkeys(probes, n // len(probes))
    for probe in rng.sample(probes, n % len(probes)):
        counts[probe] += 1
    return [by_probe[p][rng.randrange(len(by_probe[p]))] for p in probes for _ in range(counts[p])]


def rows_per_probe(rows: list[ScenarioRecord]) -> dict[str, int]:
    """Trait rows per probe in an arm's data, for its manifest."""
    return dict(sorted(Counter(probe_of(r) for r in rows if r.kind == "trait").items()))


def batch_composition(rows: list[ScenarioRecord], per_step: int) -> list[dict]:
    """Per step: how many rows came from each kind and trait, for the run's logs."""
    steps = []
    for start in range(0, len(rows), per_step):
        batch = rows[start : start + per_step]
        counts = Counter(r.kind for r in batch)
        counts.update(f"trait:{t}" for r in batch for t in r.traits[:1])
        steps.append({"step": start // per_step + 1, **dict(sorted(counts.items()))})
    return steps
