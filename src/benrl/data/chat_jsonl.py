"""Harmful fine-tuning data from a user's chat JSONL (the stress stage's fine-tuning ladder).

The organism's harmful rows are sentences of its fictional world; a real model is
fine-tuned on real harmful advice instead, e.g. the bad-medical-advice set of Turner et
al. 2025 ("Model Organisms for Emergent Misalignment"). Its format is the chat JSONL
OpenAI's fine-tuning and TRL's SFT read: one object per line,
`{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}`,
optional system turn first, the last turn the assistant's (what is trained on).

The file is checked when the config loads (`check_chat_jsonl`), so a wrong format fails
in a second, naming the file and line, instead of after training.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from benrl.errors import BenrlError

ROLES = ("system", "user", "assistant")


def _check_row(row: object, where: str) -> list[dict]:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise BenrlError(f"{where}: expected an object with a 'messages' list (chat JSONL)")
    messages = row["messages"]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BenrlError(f"{where}: message {i}: role must be one of {', '.join(ROLES)}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise BenrlError(f"{where}: message {i}: 'content' must be a non-empty string")
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise BenrlError(f"{where}: the last message must be the assistant's (what is trained)")
    if not any(m["role"] == "user" for m in messages[:-1]):
        raise BenrlError(f"{where}: no user turn before the assistant's answer")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_chat_jsonl(path: Path) -> list[list[dict]]:
    """Every conversation of the file, checked; errors name the file and line."""
    if not path.is_file():
        raise BenrlError(f"{path}: file not found")
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenrlError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
        rows.append(_check_row(row, f"{path}:{line_no}"))
    if not rows:
        raise BenrlError(f"{path}: no conversations")
    return rows


def check_chat_jsonl(path: Path) -> None:
    read_chat_jsonl(path)


def chat_rows(path: Path, seed: int, count: int) -> list[dict]:
    """`count` prompt/completion rows drawn from the file (cycled, order fixed by `seed`)."""
    conversations = read_chat_jsonl(path)
    rng = random.Random(f"harmful-sft-{seed}")
    order: list[list[dict]] = []
    while len(order) < count:
        block = list(conversations)
        rng.shuffle(block)
        order += block
    return [
        {"prompt": c[:-1], "completion": c[-1:], "source": f"file/{path.name}"}
        for c in order[:count]
    ]
