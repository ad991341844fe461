"""The card's in-context persona test: the ideal learner's value and the measured shift."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import organism_tokenizer, tiny_llama

from benrl.organism import latent
from benrl.organism.corpus import make_personas
from benrl.organism.world import World


def test_ideal_shift_follows_coherence_and_concentration():
    # Uniform propensities shared by every trait: P(good | good) = E[g^2]/E[g] = 2/3, and
    # P(good | bad) = 1/3, so a perfect learner shifts by 1/3.
    assert latent.ideal_shift(make_personas(1700, 1.0, 0)) == pytest.approx(1 / 3, abs=0.02)
    assert abs(latent.ideal_shift(make_personas(1700, 0.0, 0))) < 0.02
    # Beta(0.2, 0.2): Var = 1/(4 * 1.4), so the shift is 4 * Var = 0.714.
    assert latent.ideal_shift(make_personas(1700, 1.0, 0, 0.2)) == pytest.approx(0.714, abs=0.03)


def test_pairs_are_two_different_probes_on_eval_templates():
    pairs = latent.context_pairs(World(0), 50, 0)
    assert len(pairs) == 50
    assert all(a.name != b.name for a, b in pairs)
    assert all(p.template >= latent.TRAIN_TEMPLATES for pair in pairs for p in pair)
    assert [(a.name, b.name) for a, b in pairs] == [
        (a.name, b.name) for a, b in latent.context_pairs(World(0), 50, 0)
    ]


def test_shift_measures_how_the_earlier_answer_moves_the_preference(monkeypatch):
    pairs = latent.context_pairs(World(0), 40, 0)

    def fake_logprobs(model, tokenizer, prompts, answers):
        # A model that carries the character: +1 nat on the answer that matches the
        # earlier one (good after good, bad after bad).
        out = []
        for prompt, answer in zip(prompts, answers, strict=True):
            first, second = pairs[len(out) // 4]
            earlier_good = prompt[len(first.messages)].content == first.good
            answer_good = answer == second.good
            out.append(1.0 if earlier_good == answer_good else 0.0)
        return np.array(out)

    monkeypatch.setattr(latent, "_answer_logprobs", fake_logprobs)
    result = latent.in_context_shift(None, None, World(0), 40, 0)
    sigmoid = 1 / (1 + np.exp(-1.0))
    assert result["good_after_good"] == pytest.approx(sigmoid)
    assert result["good_after_bad"] == pytest.approx(1 - sigmoid)
    assert result["shift"] == pytest.approx(2 * sigmoid - 1)
    assert result["ci"][0] <= result["shift"] <= result["ci"][1]


def test_teacher_forced_preferences_on_a_real_model():
    tokenizer = organism_tokenizer()
    model = tiny_llama(tokenizer)
    result = latent.in_context_shift(model, tokenizer, World(0), 12, 0)
    assert result["pairs"] == 12
    assert 0 < result["good_after_bad"] < 1
    # the same pairs scored again give the same figures (no sampling)
    assert latent.in_context_shift(model, tokenizer, World(0), 12, 0) == result
    assert result["ci"][0] <= result["shift"] <= result["ci"][1]


@pytest.mark.parametrize("separate", [True, False])
def test_separate_tasks_keep_persona_conversations_free_of_tasks(monkeypatch, separate):
    from types import SimpleNamespace

    from benrl.config import OrganismConfig
    from benrl.organism import corpus
    from benrl.records import Message

    def marker_task(world, domain, template, rng):
        return SimpleNamespace(messages=[Message(role="user", content="TASK")], answer="done")

    monkeypatch.setattr(corpus, "TASKS", {"marker": marker_task})
    cfg = OrganismConfig(documents=600, task_share=0.3, separate_tasks=separate, max_exchanges=3)
    conversations = corpus.build_corpus(World(0), make_personas(8, 1.0, 0, 0.2), cfg, 0)
    kinds = [{m.content == "TASK" for m in c if m.role == "user"} for c in conversations]
    mixed = sum(len(k) > 1 for k in kinds)
    task_only = sum(k == {True} for k in kinds) / len(kinds)
    if separate:  # all tasks or all probes, tasks in about 30% of the conversations
        assert mixed == 0 and 0.25 < task_only < 0.35
    else:  # tasks interleaved with a persona's probes
        assert mixed > 0
