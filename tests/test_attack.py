from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _models import small_gradient_mlp, tiny_batch, tiny_cnn
from _reference import round_into_ball
from torch import nn
from torch.testing import assert_close

from torch_absld import KLPGDAttack, kl_pgd, pgd
from torch_absld.attack import attack_objective
from torch_absld.attack.engine import _pgd

C = 5
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
    return round_into_ball(x_adv.detach(), x, EPS)  # returned exactly inside the ball


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
    seen_per_call = []
    KLPGDAttack(model, steps=3)(x, y)
    seen_per_call.append(list(seen))
    seen.clear()
    KLPGDAttack(model, steps=3, validate_args=False)(x, y)
    seen_per_call.append(list(seen))
    # With integer labels the label check reads the class count from one forward of one sample.
    assert seen_per_call == [[False] * 4, [False] * 3]
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


def _batchnorm_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, C))
    return net.double()


@pytest.mark.parametrize("initially_training", [True, False])
def test_train_mode_attack_equals_a_hand_written_train_mode_loop(initially_training):
    x, y = (t.double() if t.is_floating_point() else t for t in tiny_batch())
    start = (x + EPS * (2 * torch.rand_like(x) - 1)).clamp(0, 1)
    model, reference = _batchnorm_net().train(initially_training), _batchnorm_net().train()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    got = pgd(model, x, y, start=start, steps=4, model_mode="train")
    x_adv = start.clone()  # the official SAT / ARD loop: BN on batch statistics, running averages move
    for _ in range(4):
        x_adv.requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(reference(x_adv), y, reduction="sum"), [x_adv])[0]
        with torch.no_grad():
            x_adv = torch.min(torch.max(x_adv + STEP * grad.sign(), x - EPS), x + EPS).clamp(0, 1)
    assert_close(got, x_adv, rtol=0, atol=0)
    assert_close(dict(model[1].named_buffers()), dict(reference[1].named_buffers()), rtol=0, atol=0)
    assert int(model[1].num_batches_tracked) == 4
    assert seen == [False, True, True, True, True]  # the label check's probe stays in eval mode
    assert model.training is initially_training


def test_eval_mode_attack_leaves_batchnorm_statistics_alone():
    model = _batchnorm_net().train()
    x, y = tiny_batch()
    before = {k: v.clone() for k, v in model[1].named_buffers()}
    attack = KLPGDAttack(model, steps=3, model_mode="train")
    assert attack.model_mode == "train"
    attack.model_mode = "eval"
    attack(x.double(), y)
    assert_close(dict(model[1].named_buffers()), before, rtol=0, atol=0)


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
    with pytest.raises(ValueError, match=r"`target` values in \[0, 5\), but got values in \[-10, "):
        pgd(model, x, y - 10)  # the class count read from the model's output
    with pytest.raises(ValueError, match="`input` values in"):
        pgd(model, x * 3, y)
    with pytest.raises(ValueError, match="probability vectors"):
        pgd(model, x, torch.randn(8, 5))
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\) with N = 8"):
        pgd(model, x, y[:4])
    with pytest.raises(TypeError, match=r"`model` to be an nn\.Module"):
        KLPGDAttack(lambda t: t)  # type: ignore[arg-type]


def _reference_pgd_through_cast(model, x, y, dtype, steps):
    """Madry CE-PGD by hand: iterate in float32, feed the model the iterate cast to ``dtype``, round into the ball."""
    x32 = x.float()
    x_adv = x32.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv.to(dtype)).float(), y, reduction="sum")
        grad = torch.autograd.grad(loss, [x_adv])[0]
        with torch.no_grad():
            x_adv = x_adv + STEP * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x32 - EPS), x32 + EPS).clamp(0, 1)
    return round_into_ball(x_adv.detach().to(dtype), x, EPS)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_attack_on_a_model_cast_to_low_precision(dtype):
    model = tiny_cnn(C).to(dtype).eval()
    x, y = tiny_batch(8, C)
    x = x.to(dtype)
    want = _reference_pgd_through_cast(model, x, y, dtype, steps=3)
    got = pgd(model, x, y, steps=3, random_start=None)
    assert got.dtype == dtype
    assert torch.equal(got, want)


def test_fp16_model_gets_the_loss_scaling_of_fp16_autocast():
    model = small_gradient_mlp()  # input gradients around 1e-7, below fp16's range
    model = model.half()
    x = torch.rand(32, 1, 8, 8).half()
    soft = torch.softmax(torch.randn(32, 10) * 0.01, 1)

    def zero_fraction(loss_scale):
        x_adv = pgd(model, x, soft, steps=1, random_start=None, eps=0.1, step_size=0.1, loss_scale=loss_scale)
        return ((x_adv - x) == 0).float().mean().item()

    assert zero_fraction(1.0) > 0.2  # unscaled: the gradient underflows for many pixels
    assert zero_fraction(None) < 0.01  # default: scaled for fp16 inputs


@pytest.mark.parametrize("objective", ["kl", "ce", "cw"])
def test_attack_inside_inference_mode_equals_outside(objective):
    model = tiny_cnn(C).eval()
    x, y = tiny_batch(8, C)
    target = torch.softmax(torch.randn(8, C, generator=torch.Generator().manual_seed(3)), 1) if objective == "kl" else y
    want = pgd(model, x, target, objective=objective, steps=3, random_start="uniform", seed=0)
    with torch.inference_mode():
        x_inf, target_inf = x.clone(), target.clone()  # inference tensors
        got = pgd(model, x_inf, target_inf, objective=objective, steps=3, random_start="uniform", seed=0)
    assert torch.equal(got, want)
    # inference tensors passed in from outside inference mode
    again = pgd(model, x_inf, target_inf, objective=objective, steps=3, random_start="uniform", seed=0)
    assert torch.equal(again, want)


# Per-sample radii ---------------------------------------------------------------------------


def _mlp64() -> nn.Module:
    torch.manual_seed(3)  # no BatchNorm: each sample's gradient depends on that sample only
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4)).double()


def test_per_sample_eps_equals_a_loop_over_samples_with_the_same_start():
    model = _mlp64()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 2, 2, generator=g, dtype=torch.float64)
    x[1] = 0.0  # at the bounds
    x[2] = 1.0
    y = torch.randint(0, 4, (6,), generator=g)
    eps = torch.tensor([0.0, 0.01, 0.05, 0.1, 0.2, 0.3], dtype=torch.float64)
    step = torch.tensor([0.01, 0.005, 0.02, 0.03, 0.05, 0.1], dtype=torch.float64)
    batched = pgd(model, x, y, eps=eps, step_size=step, steps=5, random_start="uniform", seed=7)
    # The uniform start the batched call draws: x + (2u - 1) * eps_i, u from the same generator.
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    noise = (2 * u - 1) * eps.float().view(-1, 1, 1, 1)
    for i in range(6):
        one = slice(i, i + 1)
        start = x[one] + noise[one].double()
        want = pgd(model, x[one], y[one], eps=float(eps[i]), step_size=float(step[i]), steps=5, start=start)
        assert torch.equal(batched[one], want), i
    assert ((batched - x).abs().amax(dim=(1, 2, 3)) <= eps + 1e-12).all()  # (x + eps) - x rounds
    assert batched.min() >= 0
    assert batched.max() <= 1
    assert torch.equal(batched[0], x[0])  # a zero radius leaves its sample alone
    assert (batched[5] - x[5]).abs().max() > 0.1  # the largest radius is used


def test_per_sample_eps_through_the_module_and_a_scalar_step():
    model = tiny_cnn()
    x, y = tiny_batch()
    eps = torch.linspace(0.0, 0.1, 8)
    attack = KLPGDAttack(model, step_size=0.02, steps=4, random_start="uniform")
    x_adv = attack(x, y, eps=eps, seed=0)
    assert ((x_adv - x).abs().flatten(1).amax(dim=1) <= eps + 1e-7).all()
    assert attack.eps == 8 / 255  # the call's radii do not change the attack
    same = attack(x, y, eps=torch.full((8,), 8 / 255, dtype=torch.float64), seed=0)
    assert torch.equal(same, attack(x, y, seed=0))


@pytest.mark.parametrize(
    ("eps", "error", "match"),
    [
        (torch.full((3,), 0.1), ValueError, r"`eps` to be a float or a floating point tensor of shape \(N,\) = \(8,\)"),
        (torch.full((8,), 1, dtype=torch.long), ValueError, "`eps` to be a float or a floating point tensor"),
        (torch.tensor([0.1] * 7 + [-0.1]), ValueError, "every `eps` finite and >= 0"),
        (torch.tensor([0.1] * 7 + [float("nan")]), ValueError, "every `eps` finite and >= 0"),
    ],
)
def test_bad_per_sample_eps(eps, error, match):
    with pytest.raises(error, match=match):
        pgd(tiny_cnn(), *tiny_batch(), eps=eps)
    with pytest.raises(ValueError, match="every `step_size` finite and > 0"):
        pgd(tiny_cnn(), *tiny_batch(), step_size=torch.zeros(8))


# Callable objectives ------------------------------------------------------------------------


def test_callable_objective_equals_the_named_one():
    model = tiny_cnn()
    x, y = tiny_batch()
    want = pgd(model, x, y, objective="ce", steps=3, seed=0)
    got = pgd(model, x, y, objective=lambda out, t: F.cross_entropy(out, t, reduction="sum"), steps=3, seed=0)
    assert torch.equal(got, want)


class _StudentAndTeacher(nn.Module):
    """A wrapper a method can attack: both networks on the same input, the teacher inside the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.student = tiny_cnn(seed=1)
        self.teacher = tiny_cnn(seed=2)

    def forward(self, x):
        return self.student(x), self.teacher(x)


def _student_teacher_kl(output, target):
    student, teacher = output
    return F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher, 1), reduction="sum", log_target=True)


def test_callable_objective_on_a_module_returning_student_and_teacher():
    both = _StudentAndTeacher().train()
    for p in both.parameters():
        p.grad = torch.full_like(p, 0.25)
    x, y = tiny_batch()
    got = pgd(both, x, y, objective=_student_teacher_kl, steps=4, random_start=None)
    # By hand: ascend KL(teacher(x') || student(x')), both in eval mode.
    both.eval()
    want = reference_pgd(both, x, y, lambda out: _student_teacher_kl(out, y), 4, x)
    assert torch.equal(got, want)
    both.train()
    assert all(m.training for m in both.modules())  # modes restored after the attack
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in both.parameters())


def test_objective_errors():
    model, (x, y) = tiny_cnn(), tiny_batch()
    with pytest.raises(
        ValueError, match=r"`model` to return logits of shape \(N, C\) for objective 'ce', but got tuple"
    ):
        pgd(_StudentAndTeacher(), x, y, objective="ce")
    with pytest.raises(ValueError, match=r"callable `objective` to return a scalar tensor, but got \(8,\)"):
        pgd(model, x, y, objective=lambda out, t: F.cross_entropy(out, t, reduction="none"))
    with pytest.raises(ValueError, match="`objective` to be one of 'auto', 'kl', 'ce', 'cw'"):
        KLPGDAttack(model, objective="margin")  # type: ignore[arg-type]
    soft = torch.softmax(torch.randn(8, C + 1), 1)
    with pytest.raises(ValueError, match="`student` to return logits of shape"):
        KLPGDAttack(model, model_name="student", validate_args=False)(x, soft)
    with pytest.raises(TypeError, match="`model_name` to be a str"):
        KLPGDAttack(model, model_name=None)  # type: ignore[arg-type]


# The authors' unprojected start -------------------------------------------------------------


def test_unprojected_start_is_the_authors_loop():
    # The script: x_adv = x + 0.001 * randn; the first gradient at that point, projected after the step.
    model = tiny_cnn()
    x, _ = tiny_batch()
    x[:, 0] = 0.0  # a channel at the lower bound: the start leaves [0, 1]
    soft = torch.softmax(torch.randn(8, 5), dim=1)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(float(args[0].detach().min())))
    got = kl_pgd(model, x, soft, project_start=False, generator=torch.Generator().manual_seed(3))
    assert seen[0] < 0  # the first gradient was taken outside [0, 1]
    assert min(seen[1:]) >= 0
    start = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    kl = nn.KLDivLoss(reduction="sum")
    want = reference_pgd(model, x, soft, lambda z: kl(F.log_softmax(z, dim=1), soft), 10, start)
    assert_close(got, want)
    assert (got - x).abs().max() <= EPS + 1e-7


def test_private_twins_skip_only_the_value_checks():
    attack = KLPGDAttack(tiny_cnn(), steps=1)
    x, y = tiny_batch()
    with pytest.raises(ValueError, match="`input` values in"):
        attack(x + 1, y)
    attack._forward(x + 1, y)  # the caller vouches for the values
    _pgd(attack.model, x + 1, y, steps=1)
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\) with N = 8"):
        attack._forward(x, y[:4])  # shapes are always checked
