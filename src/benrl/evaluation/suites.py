"""The core eval families, and the suite (names and items) a run evaluates.

Two families work on any model, whatever wrote the scenarios:

- `traits`: one eval per taxonomy trait (`trait_<name>`), over every eval-split trait
  record whose `traits` field names it, so records from the organism's templates and
  from an LLM writer (`source` `llm/<trait>/...`) fill it alike; plus `capability`
  over every held-out standard task. Graded by the config's trait and task judges.
- `realdata`: one eval per public dataset of `data/realdata.py` (`xstest`, `bbq`, ...),
  graded by the dataset's own scorer (a model judge where the set needs one); its items
  come from the folder `eval.realdata.root` names, never from the scenarios and never
  into training.

A third family, `byo`, holds the user's bring-your-own evals (`eval.realdata.yaml`,
YAML files read by `data.realdata.load_eval_yaml`), registered when a config names them.

A run's suite is `eval.evals`, or when that is empty the family of the scenarios
backend (`data.scenarios.register_trait_source`); plus `eval.realdata.sets` and the
bring-your-own evals.
`check_suite` runs right after the scenarios stage: every chosen eval must have items,
so a suite that cannot be filled fails before any training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benrl.data.realdata import REALDATA, list_realdata, load_eval_yaml, load_realdata
from benrl.data.scenarios import trait_source_family
from benrl.data.traits import load_taxonomy
from benrl.errors import BenrlError
from benrl.evaluation.registry import Eval, eval_names, register_eval, registered_evals
from benrl.records import ScenarioRecord

if TYPE_CHECKING:
    from benrl.config import RunConfig

# taxonomy trait -> the paper's eval category it mostly measures
TRAIT_CATEGORY = {
    "truthfulness": "honesty",
    "metacognitive_transparency": "calibration",
    "corrigibility": "corrigibility",
    "downside_aware_planning": "spec_compliance",
    "power_asymmetry_awareness": "misalignment",
    "anti_hierarchy_governance": "misalignment",
    "universalizable_fairness": "fairness",
    "human_protective_helpfulness": "harmful_advice",
    "option_preserving_patience": "spec_compliance",
    "constraint_honest_pragmatism": "reward_hacking",
    "situational_attunement": "sycophancy",
    "deescalatory_firmness": "sycophancy",
    "dense_usefulness": "over_refusal",
    "bounded_initiative": "spec_compliance",
    "controlled_exploration": "spec_compliance",
}
# a realdata scorer that is a model judge grades through the config's trait judge
MODEL_GRADED = "openai"


def trait_eval(trait: str) -> Eval:
    """The eval of one taxonomy trait: every trait record that names it, any source."""
    spec = load_taxonomy().traits[trait]
    return Eval(
        f"trait_{trait}",
        TRAIT_CATEGORY.get(trait, "held_out_traits"),  # a user's own trait has no paper category
        lambda r: r.kind == "trait" and trait in r.traits,
        "trait",
        [trait],
        description=f"{spec.title}: {spec.definition}",
    )


def realdata_eval(name: str) -> Eval:
    """The eval of one public dataset; its items come from `eval.realdata.root`."""
    adapter = REALDATA[name]
    return Eval(
        name,
        adapter.category,
        lambda r: r.source == f"real/{name}",
        "trait" if adapter.scorer == MODEL_GRADED else adapter.scorer,
        description=f"public dataset {name}: {adapter.direction}",
        family="realdata",
    )


def _register() -> None:
    for trait in load_taxonomy().traits:
        register_eval(trait_eval(trait))
    register_eval(
        Eval(
            "capability",
            "capability",
            lambda r: r.kind == "task",
            "task",
            description="every held-out standard task (organism world's or scenarios.tasks_file)",
        )
    )
    for name in list_realdata():
        register_eval(realdata_eval(name))


BYO_PATHS: dict[str, Path] = {}  # bring-your-own eval name -> its YAML file


def register_byo(cfg: RunConfig) -> list[str]:
    """Register the config's bring-your-own evals (idempotent); returns their names."""
    names = []
    for path in cfg.eval.realdata.yaml:
        try:
            loaded = load_eval_yaml(path)
        except BenrlError as e:
            raise BenrlError(f"eval.realdata.yaml: {e}") from None
        name = loaded.name
        if name in BYO_PATHS and BYO_PATHS[name] != path.resolve():
            raise BenrlError(f"eval.realdata.yaml: eval '{name}' is named by two files")
        if name not in BYO_PATHS:
            if name in registered_evals():
                raise BenrlError(f"eval.realdata.yaml: {path}: eval '{name}' already exists")
            kind = "trait" if loaded.scorer == MODEL_GRADED else loaded.scorer
            register_eval(
                Eval(
                    name,
                    loaded.category,
                    lambda r, n=name: r.source == f"real/{n}",
                    kind,
                    description=f"bring-your-own eval {path}: {loaded.direction}",
                    family="byo",
                )
            )
            BYO_PATHS[name] = path.resolve()
        names.append(name)
    return names


def eval_suite(cfg: RunConfig) -> list[str]:
    """The evals a run uses: `eval.evals`, else the backend's family; plus the public sets."""
    byo = register_byo(cfg)
    evals = registered_evals()
    if cfg.eval.evals:
        chosen = eval_names(cfg.eval.evals)
    else:
        family = trait_source_family(cfg.scenarios.backend)
        chosen = sorted(n for n, e in evals.items() if e.family == family)
    return chosen + [s for s in [*cfg.eval.realdata.sets, *byo] if s not in chosen]


def realdata_records(cfg: RunConfig, names: list[str]) -> list[ScenarioRecord]:
    """The items of every public-dataset eval among `names`, read from eval.realdata.root."""
    register_byo(cfg)
    records = [r for n in names if n in BYO_PATHS for r in load_eval_yaml(BYO_PATHS[n]).records]
    sets = [n for n in names if registered_evals()[n].family == "realdata"]
    if sets and cfg.eval.realdata.root is None:
        raise BenrlError(f"evals {sets} are public datasets: set eval.realdata.root")
    for name in sets:
        try:
            loaded = load_realdata(name, cfg.eval.realdata.root, cfg.eval.realdata.limit)
        except BenrlError as e:
            raise BenrlError(f"eval.realdata: set '{name}': {e}") from None
        if not loaded.records:
            raise BenrlError(f"eval.realdata: set '{name}' has no items")
        records += loaded.records
    return records


def eval_pool(cfg: RunConfig, scenarios: list[ScenarioRecord]) -> list[ScenarioRecord]:
    """Every record the suite's evals select from: the scenarios plus the public datasets."""
    return scenarios + realdata_records(cfg, eval_suite(cfg))


def check_suite(cfg: RunConfig, scenarios: list[ScenarioRecord]) -> None:
    """Every eval of the suite has eval-split items; else one line naming the eval and why."""
    pool = eval_pool(cfg, scenarios)
    evals = registered_evals()
    for name in eval_suite(cfg):
        if not any(r.split == "eval" and evals[name].select(r) for r in pool):
            raise BenrlError(
                f"eval '{name}' (family {evals[name].family}) has no eval-split records in the "
                f"scenarios of backend '{cfg.scenarios.backend}'; pick evals that it fills "
                "(`benrl eval list`) or leave eval.evals empty for the backend's default suite"
            )


_register()
