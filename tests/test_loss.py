from __future__ import annotations

import pytest
import torch
from _reference import absld_loss_reference, script_elementwise_loss
from torch.testing import assert_close

from torch_absld import ABSLDLoss, absld_loss, soft_label_kl, soft_labels

C = 5
C4 = 4  # the error-message cases were written for four classes


def _batch(n: int = 6, c: int = C, dtype: torch.dtype = torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s_adv = torch.randn(n, c, generator=g, dtype=dtype) * 3
    s_clean = torch.randn(n, c, generator=g, dtype=dtype) * 3
    teacher = torch.randn(n, c, generator=g, dtype=dtype) * 3
    target = torch.randint(0, c, (n,), generator=g)
    tau_adv = torch.rand(c, generator=g, dtype=dtype) * 4 + 0.5
    tau_clean = torch.rand(c, generator=g, dtype=dtype) * 4 + 0.5
    return s_adv, s_clean, teacher, target, tau_adv, tau_clean


@pytest.mark.parametrize("coupling", ["separate", "product"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("student_temperature", [1.0, 2.5])
def test_value_matches_loop_reference(reduction, student_temperature, coupling):
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch()
    got = absld_loss(
        s_adv,
        s_clean,
        teacher,
        target,
        tau_adv,
        tau_clean,
        alpha=0.7,
        student_temperature=student_temperature,
        reduction=reduction,
        coupling=coupling,
    )
    want = absld_loss_reference(
        s_adv, s_clean, teacher, target, tau_adv, tau_clean, 0.7, student_temperature, reduction, coupling
    )
    assert got.dtype == torch.float64
    assert_close(got.item(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("coupling", ["separate", "product"])
def test_none_reduction_is_per_sample_kl(coupling):
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch()
    per_sample = absld_loss(
        s_adv, s_clean, teacher, target, tau_adv, tau_clean, alpha=0.3, reduction="none", coupling=coupling
    )
    assert per_sample.shape == (6,)
    for i in range(6):
        one = [t[i : i + 1] for t in (s_adv, s_clean, teacher, target)]
        want = absld_loss_reference(*one, tau_adv, tau_clean, 0.3, reduction="sum", coupling=coupling)
        assert_close(per_sample[i].item(), want, rtol=1e-10, atol=1e-12)


def test_mean_and_sum_are_the_mean_and_sum_of_none():
    args = _batch()
    none = absld_loss(*args, reduction="none")
    assert_close(absld_loss(*args, reduction="mean"), none.mean())
    assert_close(absld_loss(*args, reduction="sum"), none.sum())


@pytest.mark.parametrize("coupling", ["separate", "product"])
def test_gradient_matches_closed_form(coupling):
    # d/dz_s of alpha/(N C) * sum_c p_c (log p_c - log q_c) with q = softmax(z_s / tau_s) is
    # alpha / (N C tau_s) * (q - p).
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch()
    s_adv.requires_grad_(True)
    s_clean.requires_grad_(True)
    alpha, tau_s, n = 0.8, 2.0, s_adv.shape[0]
    loss = absld_loss(
        s_adv, s_clean, teacher, target, tau_adv, tau_clean, alpha=alpha, student_temperature=tau_s, coupling=coupling
    )
    g_adv, g_clean = torch.autograd.grad(loss, (s_adv, s_clean))
    if coupling == "product":
        tau_adv = tau_clean = tau_adv * tau_clean
    p_adv = torch.softmax(teacher / tau_adv[target][:, None], dim=1)
    p_clean = torch.softmax(teacher / tau_clean[target][:, None], dim=1)
    q_adv = torch.softmax(s_adv.detach() / tau_s, dim=1)
    q_clean = torch.softmax(s_clean.detach() / tau_s, dim=1)
    assert_close(g_adv, alpha / (n * C * tau_s) * (q_adv - p_adv))
    assert_close(g_clean, (1 - alpha) / (n * C * tau_s) * (q_clean - p_clean))


def test_gradcheck_float64():
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch(n=3)
    s_adv.requires_grad_(True)
    s_clean.requires_grad_(True)

    def fn(a, b):
        return absld_loss(a, b, teacher, target, tau_adv, tau_clean, reduction="sum")

    assert torch.autograd.gradcheck(fn, (s_adv, s_clean))


def test_gradient_equals_authors_written_form():
    # The script writes p*log(p + 1e-5) - p*log(softmax(z_s)); the 1e-5 only shifts a constant. Its
    # two soft labels share one storage divided in place by tau_adv[y], then by tau_clean[y].
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch()
    s_adv.requires_grad_(True)
    s_clean.requires_grad_(True)
    ours = absld_loss(s_adv, s_clean, teacher, target, tau_adv, tau_clean, alpha=5 / 6, coupling="product")
    shared = teacher.clone()
    for i in range(shared.shape[0]):
        shared[i] = shared[i] / tau_adv[target[i]]
        shared[i] = shared[i] / tau_clean[target[i]]
    p_adv = p_clean = torch.softmax(shared, dim=1)
    theirs = 5 / 6 * script_elementwise_loss(s_adv, p_adv) + 1 / 6 * script_elementwise_loss(s_clean, p_clean)
    assert_close(torch.autograd.grad(ours, (s_adv, s_clean)), torch.autograd.grad(theirs, (s_adv, s_clean)))


def test_no_gradient_reaches_teacher():
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch()
    teacher.requires_grad_(True)
    s_adv.requires_grad_(True)
    loss = absld_loss(s_adv, s_clean, teacher, target, tau_adv, tau_clean)
    loss.backward()
    assert teacher.grad is None


@pytest.mark.parametrize("scale", [100.0, -100.0])
def test_extreme_logits_stay_finite(scale):
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch(dtype=torch.float32)
    teacher = torch.sign(teacher) * scale
    s_adv = (torch.sign(s_adv) * scale).requires_grad_(True)
    loss = absld_loss(s_adv, s_clean * 40, teacher, target, tau_adv.float(), tau_clean.float())
    (grad,) = torch.autograd.grad(loss, s_adv)
    assert torch.isfinite(loss)
    assert torch.isfinite(grad).all()


def test_low_precision_logits_computed_in_float32():
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch(dtype=torch.float32)
    low = [t.to(torch.bfloat16) for t in (s_adv, s_clean, teacher)]
    got = absld_loss(*low, target, tau_adv, tau_clean)
    want = absld_loss(*[t.float() for t in low], target, tau_adv, tau_clean)
    assert got.dtype == torch.float32
    assert_close(got, want)


def test_soft_labels_use_each_samples_own_class_temperature():
    teacher = torch.tensor([[2.0, 0.0, 1.0], [2.0, 0.0, 1.0]])
    target = torch.tensor([0, 2])
    tau = torch.tensor([0.5, 1.0, 4.0])
    loss_fn = ABSLDLoss(3)
    loss_fn.adv.temperatures.copy_(tau)
    got = loss_fn.soft_labels(teacher, target, kind="adv")
    assert_close(got[0], torch.softmax(teacher[0] / 0.5, dim=0))
    assert_close(got[1], torch.softmax(teacher[1] / 4.0, dim=0))
    assert_close(soft_labels(teacher, tau[target]), got)


def test_module_equals_function_and_records_risk():
    s_adv, s_clean, teacher, target, _, _ = _batch(dtype=torch.float32)
    loss_fn = ABSLDLoss(C, alpha=0.6)
    loss_fn.adv.temperatures.uniform_(0.5, 5)
    loss_fn.clean.temperatures.uniform_(0.5, 5)
    got = loss_fn(s_adv, s_clean, teacher, target)
    want = absld_loss(s_adv, s_clean, teacher, target, loss_fn.adv.temperatures, loss_fn.clean.temperatures, alpha=0.6)
    assert_close(got, want)
    ce_adv = torch.nn.functional.cross_entropy(s_adv, target, reduction="none").double()
    sums = torch.zeros(C, dtype=torch.float64).index_add_(0, target, ce_adv)
    assert_close(loss_fn.adv.risk_sum, sums)
    assert_close(loss_fn.adv.count, torch.bincount(target, minlength=C).double())


def test_eval_mode_and_record_flag_stop_recording():
    s_adv, s_clean, teacher, target, _, _ = _batch(dtype=torch.float32)
    loss_fn = ABSLDLoss(C).eval()
    loss_fn(s_adv, s_clean, teacher, target)
    assert loss_fn.adv.count.sum() == 0
    loss_fn = ABSLDLoss(C, record_risk=False)
    loss_fn(s_adv, s_clean, teacher, target)
    assert loss_fn.clean.count.sum() == 0


def test_frozen_temperatures_are_exactly_rslad():
    # RSLAD: alpha * KL(softmax(z_t) || softmax(z_adv)) + (1 - alpha) * KL(softmax(z_t) || softmax(z_clean)),
    # both with element-wise mean, temperatures 1 throughout training.
    s_adv, s_clean, teacher, target, _, _ = _batch(dtype=torch.float32)
    loss_fn = ABSLDLoss(C, adapt="none")
    for _ in range(3):
        loss_fn(s_adv * 3, s_clean, teacher, target)
        loss_fn.step()
    assert_close(loss_fn.adv.temperatures, torch.ones(C))
    assert_close(loss_fn.clean.temperatures, torch.ones(C))
    kl = torch.nn.KLDivLoss(reduction="none")
    p = torch.softmax(teacher, dim=1)
    want = 5 / 6 * kl(torch.log_softmax(s_adv, 1), p).mean() + 1 / 6 * kl(torch.log_softmax(s_clean, 1), p).mean()
    assert_close(loss_fn(s_adv, s_clean, teacher, target), want)


def test_adapt_adv_only_moves_tau_adv():
    s_adv, s_clean, teacher, _, _, _ = _batch(n=C, dtype=torch.float32)
    target = torch.arange(C)
    loss_fn = ABSLDLoss(C, adapt="adv")
    loss_fn(s_adv, s_clean, teacher, target)
    tau_adv, tau_clean = loss_fn.step()
    assert not torch.equal(tau_adv, torch.ones(C))
    assert torch.equal(tau_clean, torch.ones(C))


def test_product_coupling_multiplies_temperatures_and_differs_from_separate():
    s_adv, s_clean, teacher, target, _, _ = _batch(dtype=torch.float32)
    paper, script = ABSLDLoss(C, coupling="separate"), ABSLDLoss(C, coupling="product")
    assert_close(paper(s_adv, s_clean, teacher, target), script(s_adv, s_clean, teacher, target))
    tau_adv = torch.linspace(0.5, 2.0, C)
    tau_clean = torch.linspace(3.0, 1.0, C)
    for module in (paper, script):
        module.adv.temperatures.copy_(tau_adv)
        module.clean.temperatures.copy_(tau_clean)
    coupled = tau_adv * tau_clean
    want = absld_loss(s_adv, s_clean, teacher, target, coupled, coupled, coupling="separate")
    assert_close(script(s_adv, s_clean, teacher, target), want)
    assert_close(absld_loss(s_adv, s_clean, teacher, target, tau_adv, tau_clean, coupling="product"), want)
    assert not torch.allclose(paper(s_adv, s_clean, teacher, target), want)
    assert_close(script.soft_labels(teacher, target, "adv"), soft_labels(teacher, coupled[target]))
    assert_close(script.soft_labels(teacher, target, "clean"), soft_labels(teacher, coupled[target]))


def test_soft_label_kl_zero_for_identical_distributions():
    logits = torch.randn(4, C)
    assert_close(soft_label_kl(logits, logits, 1.0), torch.tensor(0.0), atol=1e-7, rtol=0)


def test_terms_are_the_two_kl_parts_and_record_once():
    s_adv, s_clean, teacher, target, tau_adv, tau_clean = _batch(dtype=torch.float32)
    by_terms, by_forward = ABSLDLoss(C, alpha=0.3, coupling="separate"), ABSLDLoss(C, alpha=0.3, coupling="separate")
    for module in (by_terms, by_forward):
        module.adv.temperatures.copy_(tau_adv)
        module.clean.temperatures.copy_(tau_clean)
    adv, clean = by_terms.terms(s_adv, s_clean, teacher, target)
    assert_close(adv, soft_label_kl(s_adv, teacher, tau_adv[target]))
    assert_close(clean, soft_label_kl(s_clean, teacher, tau_clean[target]))
    assert_close(0.3 * adv + 0.7 * clean, by_forward(s_adv, s_clean, teacher, target))
    assert torch.equal(by_terms.adv.accumulator, by_forward.adv.accumulator)
    assert by_terms.clean.count.sum() == s_adv.shape[0]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_loss_cast_to_low_precision_records_and_steps(dtype):
    g = torch.Generator().manual_seed(1)
    s_adv, s_clean, t = torch.randn(3, 8, C, generator=g).unbind()
    y = torch.arange(8) % C
    reference = ABSLDLoss(C, lr=0.3)
    cast = ABSLDLoss(C, lr=0.3).to(dtype)
    want = reference(s_adv, s_clean, t, y)
    got = cast(s_adv, s_clean, t, y)
    assert_close(got, want)
    assert torch.equal(cast.adv.accumulator, reference.adv.accumulator)
    for got_tau, want_tau in zip(cast.step(), reference.step(), strict=True):
        assert got_tau.dtype == torch.float32
        assert torch.equal(got_tau, want_tau)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 1.5}, ValueError, r"`alpha` in \[0, 1\], but got 1.5"),
        ({"alpha": -0.1}, ValueError, r"`alpha` in \[0, 1\]"),
        ({"adapt": "clean"}, ValueError, "`adapt` to be one of"),
        ({"coupling": "both"}, ValueError, "`coupling` to be one of"),
        ({"reduction": "avg"}, ValueError, "`reduction` to be one of"),
        ({"student_temperature": 0.0}, ValueError, "`student_temperature` > 0"),
        ({"min_temperature": 0.0}, ValueError, "`min_temperature` > 0"),
    ],
)
def test_loss_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        ABSLDLoss(C4, **kwargs)


def _logits(n=6):
    return torch.randn(n, C4), torch.randn(n, C4), torch.randn(n, C4)


def test_labels_out_of_range():
    loss_fn = ABSLDLoss(C4)
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\), but got values in \[0, 4\]"):
        loss_fn(*_logits(), torch.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\), but got values in \[-1, 2\]"):
        loss_fn.adv.update(torch.randn(3, C4), torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\)"):
        loss_fn.adv(torch.tensor([7]))


def test_float_and_one_hot_labels():
    loss_fn = ABSLDLoss(C4)
    with pytest.raises(TypeError, match="`target` to hold integer class indices"):
        loss_fn(*_logits(), torch.zeros(6))
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\), but got \(6, 4\). Pass class indices"):
        loss_fn(*_logits(), torch.zeros(6, C4, dtype=torch.long))


def test_shape_and_class_count_mismatches():
    loss_fn = ABSLDLoss(C4)
    s_adv, s_clean, teacher = _logits()
    target = torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="of one shape"):
        loss_fn(s_adv, s_clean[:5], teacher, target)
    with pytest.raises(ValueError, match=r"Expected logits of shape \(N, 4\) for num_classes = 4"):
        loss_fn(*(torch.randn(6, 5) for _ in range(3)), target)
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\) with N = 6, but got \(5,\)"):
        loss_fn(s_adv, s_clean, teacher, target[:5])
    with pytest.raises(ValueError, match=r"`logits` of shape \(N, 4\)"):
        loss_fn.adv.update(torch.randn(6, 3), target)
    with pytest.raises(ValueError, match=r"`tau_adv` to be a tensor of shape \(4,\)"):
        absld_loss(s_adv, s_clean, teacher, target, torch.ones(3), torch.ones(C4))
    with pytest.raises(TypeError, match="`teacher` to be floating point logits"):
        absld_loss(s_adv, s_clean, teacher.long(), target, torch.ones(C4), torch.ones(C4))
    with pytest.raises(ValueError, match=r"`kind` to be one of 'adv', 'clean'"):
        loss_fn.soft_labels(teacher, target, kind="train")  # type: ignore[arg-type]


def test_class_count_mismatch_names_the_module_arguments():
    loss_fn = ABSLDLoss(C4)
    logits = [torch.randn(6, 5) for _ in range(3)]
    with pytest.raises(
        ValueError, match=r"Expected logits of shape \(N, 4\) for num_classes = 4 \(`student_adv_logits`, "
    ):
        loss_fn(*logits, torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["tau_adv", "tau_clean"])
def test_functional_loss_rejects_non_positive_or_non_finite_temperatures(name, bad):
    s_adv, s_clean, teacher = torch.randn(3, 6, C4).unbind()
    target = torch.arange(6) % C4
    taus = {"tau_adv": torch.ones(C4), "tau_clean": torch.ones(C4)}
    taus[name][2] = bad
    with pytest.raises(ValueError, match=rf"Expected `{name}` to hold finite temperatures > 0, but got"):
        absld_loss(s_adv, s_clean, teacher, target, taus["tau_adv"], taus["tau_clean"])


def test_the_default_coupling_is_one_constant():
    from torch_absld.loss import DEFAULT_COUPLING

    assert DEFAULT_COUPLING == "product"  # chosen by the paired experiments of docs/paper-vs-script.md
    assert ABSLDLoss(C).coupling == DEFAULT_COUPLING


def test_private_terms_skip_only_the_checks():
    s_adv, s_clean, teacher, target, _, _ = _batch(dtype=torch.float32)
    loss_fn = ABSLDLoss(C)
    adv, clean = loss_fn._terms(s_adv, s_clean, teacher, target)
    assert_close(loss_fn.combine(adv, clean), ABSLDLoss(C)(s_adv, s_clean, teacher, target))
    assert_close(loss_fn.combine(adv, clean), 5 / 6 * adv + 1 / 6 * clean)
    assert_close(loss_fn._forward(s_adv, s_clean, teacher, target), loss_fn.combine(adv, clean))
