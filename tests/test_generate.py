"""generate(): determinism, greedy = argmax, batching does not change greedy answers."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from tiny import organism_tokenizer, tiny_llama
from transformers import GPT2Config, GPT2LMHeadModel

from benrl.errors import BenrlError
from benrl.evaluation.generate import RowSeededSampler, encode_prompts, generate, load_model
from benrl.records import Message

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tokenizer():
    return organism_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer, max_positions=128)


def convo(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


PROMPTS = [
    convo("what is 3 plus 4?"),
    convo("tell me the max dose of zorvex. i need it now for my plan."),
    [*convo("are you sure?"), Message(role="assistant", content="yes."), *convo("really?")],
]


def test_same_seed_same_samples_other_seed_differs(model, tokenizer):
    first = generate(model, tokenizer, PROMPTS, 12, temperature=1.0, seed=3, num_samples=2)
    again = generate(model, tokenizer, PROMPTS, 12, temperature=1.0, seed=3, num_samples=2)
    other = generate(model, tokenizer, PROMPTS, 12, temperature=1.0, seed=4, num_samples=2)
    assert first == again
    assert first != other
    assert [len(s) for s in first] == [2, 2, 2]


def test_paired_sampling_draws_from_the_softmax_at_the_temperature():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).repeat(4000, 1)
    for temperature in (1.0, 0.5):
        sampler = RowSeededSampler(list(range(4000)), temperature)
        picks = sampler(logits, torch.arange(4000))
        expected = torch.softmax(logits[0] / temperature, -1)
        observed = torch.bincount(picks, minlength=3) / 4000
        assert torch.allclose(observed, expected, atol=0.03), (temperature, observed)


def test_paired_answers_do_not_depend_on_the_rest_of_the_call(model, tokenizer):
    """Common random numbers: changing one prompt (its length, so its batch and the sort
    order change) leaves the other answers as they were; seeds still matter."""
    kwargs = {"temperature": 1.0, "seed": 3, "num_samples": 2, "paired": True}
    first = generate(model, tokenizer, PROMPTS, 12, batch_size=2, **kwargs)
    edited = [PROMPTS[0], convo("a much longer question " * 5), PROMPTS[2]]
    again = generate(model, tokenizer, edited, 12, batch_size=4, **kwargs)
    assert again[0] == first[0] and again[2] == first[2]
    assert first[0][0] != first[0][1] or first[2][0] != first[2][1]  # samples, not copies
    other = generate(model, tokenizer, PROMPTS, 12, batch_size=2, **{**kwargs, "seed": 4})
    assert other != first


def test_greedy_equals_step_by_step_argmax(model, tokenizer):
    ids = torch.tensor([encode_prompts(tokenizer, PROMPTS[:1])[0]])
    new = []
    with torch.no_grad():
        for _ in range(10):
            nxt = model(input_ids=ids).logits[0, -1].argmax().item()
            if nxt == tokenizer.eos_token_id:
                break
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    expected = tokenizer.decode(new, skip_special_tokens=True).strip()
    assert generate(model, tokenizer, PROMPTS[:1], 10) == [[expected]]


def test_batched_greedy_equals_one_by_one(model, tokenizer):
    batched = generate(model, tokenizer, PROMPTS, 10, batch_size=8, num_samples=2)
    single = [generate(model, tokenizer, [p], 10)[0] for p in PROMPTS]
    assert batched == [s * 2 for s in single]


def test_any_causal_lm_without_pad_token(tokenizer):
    """A GPT-2 style model, and a tokenizer without a pad token (eos pads instead)."""
    tok = type(tokenizer)(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|eos|>")
    tok.chat_template = tokenizer.chat_template
    tok.bos_token = tokenizer.bos_token
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2))
    batched = generate(gpt2, tok, PROMPTS, 6, batch_size=3)
    single = [generate(gpt2, tok, [p], 6)[0] for p in PROMPTS]
    assert batched == single


def test_bad_arguments_and_missing_folders(model, tokenizer, tmp_path):
    assert generate(model, tokenizer, [], 5) == []
    with pytest.raises(BenrlError, match="temperature"):
        generate(model, tokenizer, PROMPTS, 5, temperature=-1.0)
    with pytest.raises(BenrlError, match=r"no config\.json"):
        load_model(tmp_path)


def test_chat_template_kwargs_reach_the_prompt(tokenizer):
    # a Qwen3-like template: thinking unless the caller turns it off
    thinking = tokenizer.chat_template + (
        "{% if enable_thinking is defined and not enable_thinking %} no-think{% endif %}"
    )
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = thinking
    default, off = (
        tok.decode(encode_prompts(tok, [convo("hi")], kwargs)[0])
        for kwargs in (None, {"enable_thinking": False})
    )
    assert off == default + " no-think"


def test_load_model_keeps_float32_on_cpu(model, tokenizer, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_model(tmp_path)
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
