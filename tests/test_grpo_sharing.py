"""Shared prompts in GRPO: the same log-probs and gradients as TRL's pass, the same greedy
answers as `model.generate`, and TRL's own code wherever the sharing does not apply."""

from __future__ import annotations

import os

import pytest
import torch
from datasets import Dataset
from tiny import organism_tokenizer, tiny_llama
from transformers.cache_utils import DynamicLayer
from trl import GRPOConfig, GRPOTrainer

from benrl.evaluation.decode import RoomyLayer, decode, greedy
from benrl.evaluation.generate import encode_prompts
from benrl.records import Message
from benrl.training.grpo import SharedPromptGRPOTrainer, length_buckets

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
@pytest.mark.parametrize("overhead", [0, 10_000])
def test_shared_prompt_pass_equals_trls_pass(trainer, tokenizer, edited, overhead, monkeypatch):
    """Also when one copy's prompt differs from its group's: it gets a prompt pass of its own;
    with every answer length a bucket of its own (overhead 0) and with one bucket.

    In float64: in float32 this random model's gradients carry round-off of up to 0.5% in
    TRL's own pass (against its float64 pass), the shared pass as much."""
    monkeypatch.setattr(trainer, "bucket_overhead", overhead)
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


@pytest.mark.parametrize("overhead", [0, 10_000])
def test_the_prompt_runs_once_and_answers_by_length(trainer, tokenizer, monkeypatch, overhead):
    monkeypatch.setattr(trainer, "bucket_overhead", overhead)
    ids, mask, keep = grouped_batch(tokenizer)
    shapes = []
    model = trainer.model
    hook = model.model.register_forward_hook(
        lambda module, args, kwargs, out: shapes.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    try:
        trainer._get_per_token_logps_and_entropies(model, ids, mask, keep)
    finally:
        hook.remove()
    assert shapes[0][0] == 2  # two prompts, once each
    tails = shapes[1:]
    assert sum(rows for rows, _ in tails) == 2 * GROUP  # then every answer once
    answer_lengths = sorted(1 + k % keep for k in range(2 * GROUP))  # grouped_batch's
    if overhead == 0:  # a bucket per length, each cut to it (+1: the last prompt token)
        assert [width for _, width in tails] == sorted({n + 1 for n in answer_lengths})
    else:  # one bucket, as wide as the longest answer
        assert tails == [(2 * GROUP, max(answer_lengths) + 1)]


def test_length_buckets_cut_padding_and_keep_every_row():
    tail_mask = torch.zeros(6, 10, dtype=torch.long)
    for row, length in enumerate([2, 2, 3, 9, 2, 10]):
        tail_mask[row, :length] = 1
    tail_mask[5, 4] = 0  # a hole: the row still reaches its last unmasked token
    buckets = length_buckets(tail_mask, overhead=5)
    assert [(rows.tolist(), width) for rows, width in buckets] == [([0, 1, 2, 4], 3), ([3, 5], 10)]
    # a dearer pass: one bucket costs 6 x 10 + 100, two 4 x 3 + 2 x 10 + 200
    assert [(rows.tolist(), width) for rows, width in length_buckets(tail_mask, 100)] == [
        (list(range(6)), 10)
    ]


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


def test_roomy_layer_holds_what_a_dynamic_layer_holds():
    """Writes into its room, falls back to concatenation when full, keeps selected rows."""
    generator = torch.Generator().manual_seed(0)

    def states(length: int) -> torch.Tensor:
        return torch.randn(3, 2, length, 4, generator=generator)

    plain = DynamicLayer()
    plain.update(states(5), states(5))
    roomy = RoomyLayer.from_layer(plain, torch.tensor([0, 1, 2]), room=2)
    for length in (1, 1, 2):  # the last update overflows the room
        keys, values = states(length), states(length)
        torch.testing.assert_close(roomy.update(keys, values), plain.update(keys, values))
    plain.batch_select_indices(torch.tensor([2, 0]))
    roomy.batch_select_indices(torch.tensor([2, 0]))
    torch.testing.assert_close((roomy.keys, roomy.values), (plain.keys, plain.values))
    assert roomy.get_seq_length() == plain.get_seq_length() == 9
