"""Training on one CUDA GPU: bf16 and fp16 (GradScaler) steps, precision="auto", compiled attack and step.

Skipped without a GPU (see conftest); ``benchmarks/gpu_suite.py`` runs them first
(``pytest -m cuda``). Single device, no DistributedDataParallel.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from _models import small_gradient_mlp, tiny_batch, tiny_cnn
from _reference import absld_loss_reference
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDStep, KLPGDAttack, fastest_settings, pgd

pytestmark = pytest.mark.cuda

C = 5
EPS = 8 / 255
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _exact_float32() -> Iterator[None]:
    """TF32 off (cuDNN convolutions use it by default): eager and compiled float32 then agree closely."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = tiny_batch(n, C, seed=seed)
    return x.to(CUDA), y.to(CUDA)


def _distiller(**kwargs: object) -> ABSLDStep:
    return ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, steps=3, lr=0.5, **kwargs).to(CUDA)


def _check_step(out, x: torch.Tensor, y: torch.Tensor, distiller: ABSLDStep, dtype: torch.dtype) -> None:
    assert out.student_adv_logits.dtype == dtype
    assert out.teacher_logits.dtype == dtype
    assert out.x_adv.dtype == torch.float32
    assert out.x_adv.device.type == "cuda"
    assert bool(((out.x_adv - x).abs() <= EPS + 1e-7).all())
    assert bool(((out.x_adv >= 0) & (out.x_adv <= 1)).all())
    assert (out.x_adv - x).abs().max() > EPS / 2  # it moved
    assert out.loss.dtype == torch.float32
    tau_adv, tau_clean = (t.double().cpu() for t in distiller.temperatures)
    want = absld_loss_reference(
        out.student_adv_logits.detach().double().cpu(),
        out.student_clean_logits.detach().double().cpu(),
        out.teacher_logits.double().cpu(),
        y.cpu(),
        tau_adv,
        tau_clean,
        alpha=5 / 6,
    )
    assert_close(out.loss.detach().double().cpu(), torch.tensor(want, dtype=torch.float64), rtol=2e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_training_steps(dtype):
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    distiller = _distiller().train()
    optimizer = torch.optim.SGD(distiller.student.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    for seed in range(3):
        x, y = _batch(seed=seed)
        with torch.autocast("cuda", dtype=dtype):
            out = distiller(x, y)
        _check_step(out, x, y, distiller, dtype)
        optimizer.zero_grad()
        scaler.scale(out.loss).backward()
        scaler.step(optimizer)
        scaler.update()
        assert all(bool(torch.isfinite(p).all()) for p in distiller.student.parameters())
    if dtype == torch.float16:
        assert 0 < scaler.get_scale() < float("inf")
    assert distiller.loss_fn.adv.accumulator.device.type == "cuda"
    assert distiller.loss_fn.adv.accumulator.dtype == torch.float64
    tau_adv, tau_clean = distiller.on_epoch_end()
    assert bool(torch.isfinite(tau_adv).all())
    assert bool(torch.isfinite(tau_clean).all())
    assert not torch.equal(tau_adv.cpu(), torch.ones(C))


def test_fp16_attack_scales_its_loss_on_cuda():
    model = small_gradient_mlp().to(CUDA)  # input gradients around 1e-7, below fp16's range
    x = torch.rand(32, 1, 8, 8, device=CUDA)
    soft = torch.softmax(torch.randn(32, 10, device=CUDA) * 0.01, 1)

    def zero_fraction(loss_scale: float | None) -> float:
        with torch.autocast("cuda", dtype=torch.float16):
            x_adv = pgd(model, x, soft, steps=1, random_start=None, eps=0.1, step_size=0.1, loss_scale=loss_scale)
        return float(((x_adv - x) == 0).float().mean())

    assert zero_fraction(1.0) > 0.2
    assert zero_fraction(None) < 0.01


def test_auto_precision_on_cuda():
    settings = fastest_settings(CUDA)
    major, _ = torch.cuda.get_device_capability(CUDA)
    assert settings.dtype == (torch.bfloat16 if major >= 8 or torch.version.hip else torch.float32)
    distiller = _distiller(precision="auto").train()
    x, y = _batch()
    out = distiller(x, y)
    assert out.student_adv_logits.dtype == settings.dtype
    assert out.x_adv.is_contiguous(memory_format=settings.memory_format)
    out.loss.backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in distiller.student.parameters())


def _same_iterates(compiled: torch.Tensor, eager: torch.Tensor, x: torch.Tensor) -> None:
    """Equal up to sign flips of near-zero gradient entries (the kernels sum in other orders)."""
    assert float(((compiled - eager).abs() > 1e-6).float().mean()) < 0.01
    assert bool(((compiled - x).abs() <= EPS + 1e-7).all())
    assert bool((compiled != x).any())


def test_compiled_attack_matches_eager_on_cuda():
    torch.manual_seed(0)
    x, y = _batch(8)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 16), nn.ReLU(), nn.Linear(16, C)).to(CUDA)
    conv = tiny_cnn(C, seed=3).to(CUDA)
    soft = torch.softmax(torch.randn(8, C, device=CUDA), 1)
    for model, target in ((mlp, y), (conv, soft)):
        eager = KLPGDAttack(model, random_start=None, steps=4)(x, target)
        compiled = KLPGDAttack(model, random_start=None, steps=4, compile=True)(x, target)
        _same_iterates(compiled, eager, x)
    assert conv.training  # the attack gave the mode back


def _epoch(compile: bool, precision: str | None = None):
    torch.manual_seed(0)
    distiller = _distiller(compile=compile, precision=precision, random_start=None).train()
    for module in distiller.modules():  # no dropout: eager and compiled see the same network
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    optimizer = torch.optim.SGD(distiller.student.parameters(), lr=0.1, momentum=0.9)
    losses, grads = [], []
    for seed in range(3):
        x, y = _batch(8, seed=seed)
        out = distiller(x, y)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in distiller.student.parameters()]))
    return torch.stack(losses), torch.stack(grads), distiller.on_epoch_end()[0]


def test_compiled_distiller_step_matches_eager_on_cuda():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    got = _epoch(compile=True)
    breaks = dict(torch._dynamo.utils.counters["graph_break"])
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    want = _epoch(compile=False)
    assert breaks == {}, f"graph breaks: {breaks}"
    assert graphs == 3  # student (train), teacher (inference), one attack step: nothing recompiled
    assert_close(got[0], want[0], rtol=1e-4, atol=1e-6)
    assert_close(got[1], want[1], rtol=1e-3, atol=1e-5)
    assert_close(got[2], want[2], rtol=1e-5, atol=1e-6)


def test_compiled_auto_precision_step_on_cuda():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    losses, grads, tau_adv = _epoch(compile=True, precision="auto")
    assert dict(torch._dynamo.utils.counters["graph_break"]) == {}
    assert bool(torch.isfinite(losses).all())
    assert bool(torch.isfinite(grads).all())
    assert bool(torch.isfinite(tau_adv).all())


def test_state_dict_moves_between_cuda_and_cpu():
    distiller = _distiller().train()
    x, y = _batch()
    distiller(x, y).loss.backward()
    distiller.on_epoch_end()
    state = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in distiller.state_dict().items()}
    on_cpu = ABSLDStep(tiny_cnn(C, seed=4), tiny_cnn(C, seed=2), C, steps=3)
    on_cpu.load_state_dict(state)
    assert_close(on_cpu.temperatures[0], distiller.temperatures[0].cpu())
    assert_close(on_cpu.student[0].weight, distiller.student[0].weight.cpu())
