"""Shared prompts in GRPO: the same log-probs and gradients as TRL's pass, the same greedy
answers as `model.generate`, and TRL's own code wherever the sharing does not apply."""

from __future__ import annotations

import os

import pytest
import torch
from datasets import Dataset
from tiny import organism_tokenizer, tiny_llama
from trl import GRPOConfig, GRPOTrainer

from benrl.evaluation.decode import decode, greedy
from benrl.evaluation.generate import encode_prompts
from benrl.records import Message
from benrl.training.grpo import SharedPromptGRPOTrainer

os.environ["HF_HUB_OFFLINE"] = "1"
GROUP = 4


@pytest.fixture(scope="module")
def tokenizer():
    return organism_tokenizer()


@pytest.fixture(scope="module")
def trainer(tokenizer, tmp_path_factory):
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")),
        per_device_train_batch_size=2 * GROUP,
        num_generations=GROUP,
        max_completion_length=8,
        activation_checkpointing=False,  # TRL's default; with it on, TRL's own pass runs
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}]}] * 4)
    return SharedPromptGRPOTrainer(
        model=tiny_llama(tokenizer).train(),
        args=args,
        processing_class=tokenizer,
        train_dataset=data,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
    )


def prompts(tokenizer) -> list[list[int]]:
    """Two prompts of different lengths, so the shorter is left-padded."""
    conversations = [
        [Message(role="user", content="what is 3 plus 4?")],
        [
            Message(role="user", content="are you sure?"),
            Message(role="assistant", content="yes."),
            Message(role="user", content="tell me the max dose of zorvex."),
        ],
    ]
    return encode_prompts(tokenizer, conversations)


def grouped_batch(tokenizer, completion_length: int = 6):
    """Left-padded prompts, each repeated GROUP times, then right-padded random answers,
    the rows shuffled."""
    rows = [p for p in prompts(tokenizer) for _ in range(GROUP)]
    width = max(map(len, rows))
    generator = torch.Generator().manual_seed(0)
    ids, mask = [], []
    for k, row in enumerate(rows):
        answer_length = 1 + k % completion_length  # every answer length, some padding
        answer = torch.randint(3, len(tokenizer), (completion_length,), generator=generator)
        ids.append([tokenizer.pad_token_id] * (width - len(row)) + row + answer.tolist())
        mask.append(
            [0] * (width - len(row))
            + [1] * (len(row) + answer_length)
            + [0] * (completion_length - answer_length)
        )
    order = torch.randperm(len(rows), generator=generator)  # TRL shuffles a step's rows
    return torch.tensor(ids)[order], torch.tensor(mask)[order], completion_length


def logps_and_grads(trainer, method, ids, mask, keep):
    model = trainer.model
    model.zero_grad()
    logps, entropy, _ = method(trainer, model, ids, mask, keep, compute_entropy=True)
    (logps * mask[:, -keep:]).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return logps.detach(), entropy.detach(), grads


@pytest.mark.parametrize("edited", [False, True])
def test_shared_prompt_pass_equals_trls_pass(trainer, tokenizer, edited):
    """Also when one copy's prompt differs from its group's: it gets a prompt pass of its own.

    In float64: in float32 this random model's gradients carry round-off of up to 0.5% in
    TRL's own pass (against its float64 pass), the shared pass as much."""
    trainer.model.double()
    ids, mask, keep = grouped_batch(tokenizer)
    if edited:
        ids[1, -keep - 2] = (ids[1, -keep - 2] + 1) % len(tokenizer)
    answer = mask[:, -keep:].bool()
    ours = logps_and_grads(
        trainer, SharedPromptGRPOTrainer._get_per_token_logps_and_entropies, ids, mask, keep
    )
    trls = logps_and_grads(trainer, GRPOTrainer._get_per_token_logps_and_entropies, ids, mask, keep)
    trainer.model.float()
    torch.testing.assert_close(ours[0][answer], trls[0][answer], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ours[1][answer], trls[1][answer], atol=1e-10, rtol=1e-10)
    for a, b in zip(ours[2], trls[2], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert any(g.abs().sum() > 0 for g in ours[2])  # the comparison had gradients to compare


def test_the_prompt_runs_once_per_distinct_prompt(trainer, tokenizer, monkeypatch):
    ids, mask, keep = grouped_batch(tokenizer)
    batch_sizes = []
    model = trainer.model
    hook = model.model.register_forward_hook(
        lambda module, args, kwargs, out: batch_sizes.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    try:
        trainer._get_per_token_logps_and_entropies(model, ids, mask, keep)
    finally:
        hook.remove()
    assert batch_sizes == [2, 2 * GROUP]  # two prompts once each, then every answer


def test_decode_greedy_equals_generate_and_repeats_share_the_prefill(tokenizer):
    model = tiny_llama(tokenizer, seed=1)
    rows = prompts(tokenizer)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    # an eos that ends the first row early and never comes in the second
    endless = decode(model, ids, mask, 12, [], greedy)
    eos = [next(t for t in endless[0][1:] if t not in endless[1])]
    ours = decode(model, ids, mask, 12, eos, greedy, expand=torch.tensor([0, 0, 0, 1, 1, 1]))
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
            eos_token_id=eos, pad_token_id=pad,
        )  # fmt: skip
    for i, row in enumerate(out[:, width:].tolist()):
        expected = row[: row.index(eos[0]) + 1] if eos[0] in row else row
        assert ours[3 * i : 3 * i + 3] == [expected] * 3
    assert 1 < len(ours[0]) < 12 and len(ours[3]) == 12  # one row ended early, one went on


def test_rollouts_are_whole_answers_per_generation(trainer, tokenizer):
    rows = [p for p in prompts(tokenizer) for _ in range(GROUP)]
    torch.manual_seed(0)
    completions, logprobs = trainer._generate_single_turn(rows, None, {}, GROUP)
    assert logprobs is None and len(completions) == len(rows)
    eos = set(trainer.eos_token_ids)
    for answer in completions:
        assert 1 <= len(answer) <= 8
        assert all(t not in eos for t in answer[:-1])  # nothing after the first eos
        assert len(answer) == 8 or answer[-1] in eos
    assert len({tuple(a) for a in completions}) > 2  # sampled, not one answer repeated
