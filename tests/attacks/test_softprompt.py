"""AdvUnlearn's soft-prompt attacker on a tiny random pipeline: it finds embeddings that lower
the attack loss, inserts them where asked, and keeps the official update rules available."""

import pytest
import torch
import torch.nn.functional as F

from attacks.softprompt import SoftPromptAttack
from pipelines import backbone_for


def attack_problem(pipe, prompt="a star image"):
    """The official attack loss on fixed (x_t, t): the erased model's noise for the attacked
    prompt against the model's noise for another prompt, so the clean prompt has a non-zero loss
    that the attacker can lower."""
    bb = backbone_for(pipe)
    prompts = bb.prompts
    ids = prompts.ids([prompt])
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(bb.latent_shape(1), generator=g)
    t = torch.tensor(500)
    with torch.no_grad():
        target = bb.predict(x_t, t, prompts.encode(["a heart image"]))  # (1, C, h, w)

    def loss_fn(in_ids, in_embeds, step):
        return F.mse_loss(bb.predict(x_t, t, prompts.encode_embeds(in_ids, in_embeds)), target)

    return bb, ids, prompts.embed_ids(ids).detach(), prompts.token_embedding.weight.detach(), loss_fn


@pytest.mark.parametrize("update", ["pgd", "fast_at"])
def test_the_attack_lowers_its_loss(memory_pipe, update):
    _, ids, embeds, vocab, loss_fn = attack_problem(memory_pipe)
    # fast_at with the official never-cleared gradients only ever follows its first sign (see below)
    attack = SoftPromptAttack(k=2, init="random", update=update, lr=2e-2, steps=10, accumulate_grads=update == "pgd")
    result = attack.run(ids, embeds, vocab, loss_fn, torch.Generator().manual_seed(0))
    with torch.no_grad():
        final = float(loss_fn(*attack.inputs(ids, embeds, result.delta), 0))
    assert len(result.losses) == 10 and final < result.losses[0], (result.losses, final)
    assert result.delta.shape == (2, vocab.shape[1]) and not result.delta.requires_grad


def test_the_model_gets_no_gradient_from_the_attack(memory_pipe):
    bb, ids, embeds, vocab, loss_fn = attack_problem(memory_pipe)
    layer = next(p for n, p in bb.text_encoder.named_parameters() if "layers.0.mlp.fc1.weight" in n)
    flag = layer.requires_grad
    layer.requires_grad_(True)  # as in a defender's step: the attack must still leave its .grad alone
    try:
        SoftPromptAttack(steps=2, init="random").run(ids, embeds, vocab, loss_fn, torch.Generator().manual_seed(0))
        assert layer.grad is None
    finally:
        layer.requires_grad_(flag)


def test_random_start_is_a_vocabulary_embedding_and_latest_continues(memory_pipe):
    _, ids, embeds, vocab, loss_fn = attack_problem(memory_pipe)
    attack = SoftPromptAttack(k=3, init="latest", steps=2)
    first = attack.start(vocab, torch.Generator().manual_seed(1))
    assert all(bool((vocab == row).all(dim=-1).any()) for row in first)
    result = attack.run(ids, embeds, vocab, loss_fn, torch.Generator().manual_seed(1))
    assert torch.equal(attack.start(vocab, torch.Generator().manual_seed(2)), result.delta)
    fresh = SoftPromptAttack(k=3, init="random", steps=2)
    fresh.run(ids, embeds, vocab, loss_fn, torch.Generator().manual_seed(1))
    assert not torch.equal(fresh.start(vocab, torch.Generator().manual_seed(2)), fresh.latest)
    assert torch.equal(SoftPromptAttack(insertion="add").start(vocab, torch.Generator()), torch.zeros(1, vocab.shape[1]))


@pytest.mark.parametrize("mode", ["prefix_k", "suffix_k", "mid_k", "insert_k", "replace_k"])
def test_delta_lands_where_the_insertion_puts_it(memory_pipe, mode):
    _, ids, embeds, vocab, _ = attack_problem(memory_pipe)
    delta = torch.full((2, vocab.shape[1]), 7.0)
    in_ids, in_embeds = SoftPromptAttack(k=2, insertion=mode).inputs(ids, embeds, delta)
    assert in_ids.shape == ids.shape and in_ids[0, 0] == ids[0, 0]  # 77 positions, SOT first
    assert int((in_embeds[0] == 7.0).all(dim=-1).sum()) == 2
    if mode == "prefix_k":
        assert (in_embeds[0, 1:3] == 7.0).all()


def test_accumulated_gradients_are_the_official_behaviour_and_clearing_them_differs():
    """With a linear loss the gradient is the same every step: accumulating it makes the k-th
    Adam step see k times the gradient, which Adam's normalisation turns into the same step,
    so use a quadratic, where accumulation keeps pushing past the minimum."""
    target = torch.tensor([[3.0, -1.0]])
    vocab = torch.zeros(5, 2)
    ids = torch.tensor([[0, 1, 2, 3]])  # SOT, token, EOT, pad: the tiny layout with EOT id 2
    embeds = torch.zeros(1, 4, 2)

    def loss_fn(in_ids, in_embeds, step):
        return ((in_embeds[0, 1] - target) ** 2).sum()

    def run(accumulate):
        attack = SoftPromptAttack(k=1, init="random", lr=0.5, steps=8, accumulate_grads=accumulate)
        attack.inputs = lambda i, e, d: (i, d.unsqueeze(0).expand(1, 4, 2))
        return attack.run(ids, embeds, vocab, loss_fn, torch.Generator().manual_seed(0))

    official, cleared = run(True), run(False)
    assert not torch.equal(official.delta, cleared.delta)
    # the textbook update converges closer to the minimum than the accumulated one here
    assert ((cleared.delta - target) ** 2).sum() < ((official.delta - target) ** 2).sum()


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="insertion"):
        SoftPromptAttack(insertion="sideways")
    with pytest.raises(ValueError, match="init"):
        SoftPromptAttack(init="zeros")
    with pytest.raises(ValueError, match="update"):
        SoftPromptAttack(update="sgd")
    with pytest.raises(ValueError, match="k=0"):
        SoftPromptAttack(k=0)


def test_fast_at_with_accumulated_gradients_keeps_its_first_direction(memory_pipe):
    """A consequence of the official quirk, kept as documented behaviour: the sign is taken in
    place, so the next step's gradient (here far below 1 in size) is added to +-1 and cannot flip
    it; Adam on a constant +-1 gradient moves every coordinate by exactly lr per step."""
    _, ids, embeds, vocab, loss_fn = attack_problem(memory_pipe)
    attack = SoftPromptAttack(k=1, init="random", update="fast_at", lr=1e-2, steps=6)
    start = attack.start(vocab, torch.Generator().manual_seed(0))
    result = attack.run(ids, embeds, vocab, loss_fn, torch.Generator().manual_seed(0))
    assert torch.allclose((result.delta - start).abs(), torch.full_like(start, 6 * 1e-2), atol=1e-4)
