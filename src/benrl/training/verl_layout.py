"""Which config key the installed verl reads the custom reward function from.

verl moved the key: up to 0.8.0.dev (checked against volcengine/verl at 2026-01-29,
`verl/trainer/config/ppo_trainer.yaml`) it is top-level `custom_reward_function.{path,name}`;
later versions put it in the `reward` config group, `reward.custom_reward_function.*`.
Hydra rejects an override of a key the config does not have, so the exported launch.sh
asks the installed verl (`python3 -m benrl.training.verl_layout` prints the key) unless
the user pins it with `VERL_REWARD_KEY`.

The answer comes from verl's own config files, read as YAML (no verl import, which
would start CUDA and Ray machinery): the fully resolved `_generated_ppo_trainer.yaml`
when verl ships one, else `ppo_trainer.yaml` and the files of its `reward/` group.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

from benrl.errors import BenrlError

TOP_LEVEL = "custom_reward_function"
IN_REWARD_GROUP = "reward.custom_reward_function"


def _load(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise BenrlError(f"verl config {path}: cannot read it ({e})") from e
    return data if isinstance(data, dict) else {}


def reward_function_key(config_dir: Path) -> str:
    """`custom_reward_function` or `reward.custom_reward_function`, from verl's config folder."""
    files = [config_dir / "_generated_ppo_trainer.yaml", config_dir / "ppo_trainer.yaml"]
    found = [_load(f) for f in files if f.is_file()]
    if not found:
        raise BenrlError(f"no ppo_trainer.yaml in {config_dir}: is this verl's config folder?")
    if any(TOP_LEVEL in data for data in found):
        return TOP_LEVEL
    groups = [data.get("reward") for data in found]
    groups += [_load(f) for f in sorted((config_dir / "reward").glob("*.yaml"))]
    if any(isinstance(g, dict) and TOP_LEVEL in g for g in groups):
        return IN_REWARD_GROUP
    raise BenrlError(
        f"verl config in {config_dir} has neither {TOP_LEVEL} nor {IN_REWARD_GROUP}; "
        "set VERL_REWARD_KEY to the key your verl uses"
    )


def installed_config_dir() -> Path:
    """verl's trainer config folder, found without importing verl."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise BenrlError("verl is not installed in this Python environment")
    return Path(next(iter(spec.submodule_search_locations))) / "trainer" / "config"


def main() -> None:
    try:
        print(reward_function_key(installed_config_dir()))
    except BenrlError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
