"""The organism as a benrl plug-in: what it adds to the core's registries.

Loaded through the `benrl.plugins` entry point (pyproject.toml), exactly as a user's
plug-in would be: its judges (`world`, `verifiable`, `generic`), its eval suite, its
scenario sources (`template` traits, `world` tasks), its harmful fine-tuning rows and
its direction contrast pairs. The core packages never import `benrl.organism`.
"""

from __future__ import annotations

from benrl.analysis.pairs import register_pair_source
from benrl.data.scenarios import register_task_source, register_trait_source
from benrl.organism import judges  # noqa: F401  (registers the organism's judges)
from benrl.organism.directions_pairs import probe_pairs
from benrl.organism.evals import register_organism_evals
from benrl.organism.finetune_data import harmful_rows
from benrl.organism.scenarios import template_traits, world_tasks
from benrl.training.finetune import register_harmful_data

register_organism_evals()
register_trait_source("template", template_traits, eval_family="organism")
register_task_source("world", world_tasks)
register_harmful_data("organism", harmful_rows)
register_pair_source("organism", probe_pairs)
