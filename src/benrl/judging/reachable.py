"""One request to every OpenAI-compatible endpoint a run uses, before its first stage.

A judge or scenario writer that cannot be reached would otherwise surface hours later,
as a training step whose every reward failed. Any HTTP answer to `GET <base_url>/models`
(even 401 or 404) proves the server is there; only a connection error or a timeout is
an error: one line naming the config key and the URL, exit 2, before any stage runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from benrl.errors import BenrlError
from benrl.judging.registry import judge_options, known_judges

if TYPE_CHECKING:
    from benrl.config import RunConfig

TIMEOUT_S = 10.0


def endpoints(cfg: RunConfig) -> dict[str, str]:
    """Config key -> base URL of every endpoint the run will call."""
    known_judges()  # registers which judges borrow another's options
    used = {"trait": cfg.judge.trait, "task": cfg.judge.task}
    if "generic" in cfg.train.arms:
        used["generic"] = cfg.judge.generic
    found = {}
    for key, name in used.items():
        url = judge_options(name, cfg.judge.options).get("base_url")
        if url:
            found[f"judge.{key} ({name})"] = str(url)
    if cfg.scenarios.backend == "llm" and cfg.scenarios.llm.get("base_url"):
        found["scenarios.llm"] = str(cfg.scenarios.llm["base_url"])
    return found


def check_endpoints(cfg: RunConfig) -> None:
    """Fail in seconds, naming the key, when an endpoint does not answer."""
    for key, url in endpoints(cfg).items():
        try:
            httpx.get(f"{url.rstrip('/')}/models", timeout=TIMEOUT_S)
        except httpx.HTTPError as e:
            raise BenrlError(
                f"{key}: endpoint {url} does not answer ({type(e).__name__}); start the server "
                "or fix base_url"
            ) from None
