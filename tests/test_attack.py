from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _models import small_gradient_mlp, tiny_batch, tiny_cnn
from torch import nn
from torch.testing import assert_close

from torch_absld import KLPGDAttack, attack_objective, kl_pgd, pgd

EPS, STEP = 8 / 255, 2 / 255


def reference_pgd(model, x, target, loss_of_logits, steps, start):
    """Madry PGD written out by hand: ascend sign of the input gradient, project, clip."""
    model.eval()
    x_adv = start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = loss_of_logits(model(x_adv))
        grad = torch.autograd.grad(loss, [x_adv])[0]
        with torch.no_grad():
            x_adv = x_adv + STEP * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
    return x_adv.detach()


@pytest.mark.parametrize("objective", ["kl", "ce", "cw"])
@pytest.mark.parametrize("random_start", ["normal", "uniform", None])
def test_stays_in_eps_ball_and_bounds(objective, random_start):
    model = tiny_cnn()
    x, y = tiny_batch()
    x[0] = 0.0  # at the bounds
    x[1] = 1.0
    target = torch.softmax(torch.randn(8, 5), 1) if objective == "kl" else y
    x_adv = pgd(model, x, target, objective=objective, random_start=random_start, steps=5, step_size=0.05, seed=1)
    assert (x_adv - x).abs().max() <= EPS + 1e-7
    assert x_adv.min() >= 0
    assert x_adv.max() <= 1


def test_ce_pgd_equals_hand_written_pgd():
    model = tiny_cnn()
    x, y = tiny_batch()
    got = KLPGDAttack(model, random_start=None, steps=7)(x, y)
    want = reference_pgd(model, x, y, lambda z: F.cross_entropy(z, y, reduction="sum"), 7, x)
    assert_close(got, want)


def test_kl_pgd_equals_authors_attack_with_gaussian_start():
    # The authors: x_adv = x + 0.001 * randn; KLDivLoss(size_average=False)(log_softmax(f(x_adv)), p).
    model = tiny_cnn()
    x, _ = tiny_batch()
    soft = torch.softmax(torch.randn(8, 5) * 2, dim=1)
    got = kl_pgd(model, x, soft, generator=torch.Generator().manual_seed(3))
    noise = 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    start = torch.min(torch.max(x + noise, x - EPS), x + EPS).clamp(0, 1)
    kl = nn.KLDivLoss(reduction="sum")
    want = reference_pgd(model, x, soft, lambda z: kl(F.log_softmax(z, dim=1), soft), 10, start)
    assert_close(got, want)


def test_uniform_start_is_spread_over_the_ball():
    model = tiny_cnn()
    x = torch.full((4, 3, 8, 8), 0.5)
    one_step = pgd(model, x, torch.zeros(4, dtype=torch.long), random_start="uniform", steps=1, step_size=1e-6, seed=0)
    delta = one_step - x
    assert delta.abs().max() <= EPS + 1e-7
    assert delta.abs().mean() > EPS / 3  # uniform on [-eps, eps] has mean |delta| = eps / 2


def test_cw_objective_is_best_other_minus_true_logit():
    logits = torch.tensor([[3.0, 1.0, 2.5], [0.0, 4.0, -1.0]])
    target = torch.tensor([0, 2])
    # sample 0: max(1, 2.5) - 3 = -0.5; sample 1: max(0, 4) - (-1) = 5
    assert_close(attack_objective(logits, target, "cw"), torch.tensor(4.5))


def test_deterministic_without_random_start_and_reproducible_with_seed():
    model = tiny_cnn()
    x, _ = tiny_batch()
    soft = torch.softmax(torch.randn(8, 5), 1)
    assert torch.equal(pgd(model, x, soft, random_start=None), pgd(model, x, soft, random_start=None))
    a = pgd(model, x, soft, random_start="uniform", seed=5)
    b = pgd(model, x, soft, random_start="uniform", generator=torch.Generator().manual_seed(5))
    c = pgd(model, x, soft, random_start="uniform", seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("objective", ["kl", "ce", "cw"])
def test_maximised_loss_rises_from_the_start(objective):
    model = tiny_cnn()
    x, y = tiny_batch(n=16)
    target = torch.softmax(torch.randn(16, 5), 1) if objective == "kl" else y
    model.eval()
    with torch.no_grad():
        before = attack_objective(model(x), target, objective)
        x_adv = pgd(model, x, target, objective=objective, random_start=None)
        after = attack_objective(model(x_adv), target, objective)
    assert after > before


@pytest.mark.parametrize("initially_training", [True, False])
def test_eval_mode_during_attack_and_mode_restored(initially_training):
    model = tiny_cnn().train(initially_training)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    x, y = tiny_batch()
    KLPGDAttack(model, steps=3)(x, y)
    assert seen == [False, False, False]
    assert model.training is initially_training


def test_each_submodules_own_mode_is_restored():
    model = tiny_cnn().train()
    model[1].eval()  # a frozen BatchNorm the user keeps in eval mode
    KLPGDAttack(model, steps=1)(*tiny_batch())
    assert model.training
    assert not model[1].training
    assert model[3].training


def test_mode_restored_when_the_model_raises():
    class Exploding(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = nn.Sequential(nn.Flatten(), Exploding()).train()
    with pytest.raises(RuntimeError, match="boom"):
        pgd(model, torch.rand(2, 4), torch.tensor([0, 1]))
    assert all(module.training for module in model.modules())


def test_batchnorm_stats_and_parameter_grads_untouched():
    model = tiny_cnn().train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    KLPGDAttack(model)(*tiny_batch())
    for k, v in model.state_dict().items():
        assert torch.equal(v, stats[k]), k
    for p in model.parameters():
        assert torch.equal(p.grad, torch.full_like(p, 0.5))


def test_works_under_no_grad_with_frozen_params_and_leaves_input_alone():
    model = tiny_cnn().requires_grad_(False)
    x, y = tiny_batch()
    x_copy = x.clone()
    with torch.no_grad():
        x_adv = KLPGDAttack(model, random_start=None)(x, y)
    assert torch.equal(x, x_copy)
    assert not torch.equal(x_adv, x)
    assert not x_adv.requires_grad


def test_attack_state_dict_holds_no_model_weights():
    attack = KLPGDAttack(tiny_cnn())
    assert len(attack.state_dict()) == 0
    assert len(list(attack.parameters())) == 0


def test_bf16_autocast_keeps_the_eps_ball_exact():
    model = tiny_cnn()
    x, y = tiny_batch(n=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = KLPGDAttack(model, eps=0.0314, step_size=0.0078, steps=10)(x, y)
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= 0.0314 + 1e-7


def test_fp16_loss_scaling_keeps_the_gradient_sign_alive():
    model = small_gradient_mlp()  # input gradients around 1e-7, below fp16's range
    x = torch.rand(32, 1, 8, 8)
    soft = torch.softmax(torch.randn(32, 10) * 0.01, 1)

    def zero_fraction(loss_scale):
        with torch.autocast("cpu", dtype=torch.float16):
            x_adv = pgd(model, x, soft, steps=1, random_start=None, eps=0.1, step_size=0.1, loss_scale=loss_scale)
        return ((x_adv - x) == 0).float().mean().item()

    assert zero_fraction(1.0) > 0.2  # unscaled: the gradient underflows for many pixels
    assert zero_fraction(None) < 0.01  # default: scaled under fp16 autocast


def test_zero_eps_returns_the_input():
    model = tiny_cnn()
    x, y = tiny_batch()
    assert torch.equal(pgd(model, x, y, eps=0.0, random_start="uniform", seed=0), x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": -0.1}, ValueError, "`eps` >= 0"),
        ({"step_size": 0.0}, ValueError, "`step_size` > 0"),
        ({"steps": 0}, ValueError, "`steps` to be an int >= 1"),
        ({"random_start": "gauss"}, ValueError, "`random_start` to be one of"),
        ({"objective": "kl2"}, ValueError, "`objective` to be one of"),
        ({"clip_min": 1.0, "clip_max": 0.0}, ValueError, "`clip_min` < `clip_max`"),
    ],
)
def test_bad_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        KLPGDAttack(tiny_cnn(), **kwargs)


def test_bad_inputs():
    model = tiny_cnn()
    x, y = tiny_batch()
    with pytest.raises(ValueError, match=r"`target` values in \[0, N\)"):
        pgd(model, x, y - 10)
    with pytest.raises(ValueError, match="`input` values in"):
        pgd(model, x * 3, y)
    with pytest.raises(ValueError, match="probability vectors"):
        pgd(model, x, torch.randn(8, 5))
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\) with N = 8"):
        pgd(model, x, y[:4])
    with pytest.raises(TypeError, match=r"`model` to be an nn\.Module"):
        KLPGDAttack(lambda t: t)  # type: ignore[arg-type]
