"""fastest_settings / bf16_support against mocked capability checks, and the distiller's `precision=`."""

from __future__ import annotations

import warnings

import pytest
import torch
from _cpus import emulating_cpu, mock_cpu, mock_gpu, native_cpu
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import ABSLDStep, bf16_support, fastest_settings
from torch_absld.precision import precision_scope, warn_if_emulated

C = 5


# The CPU decision ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "native", "reason"),
    [
        ({"avx512_bf16": True}, True, "AVX512-BF16"),
        ({"amx_bf16": True}, True, "AMX-BF16"),
        ({"avx512_bf16": True, "amx_bf16": True}, True, "AMX-BF16"),
        ({}, False, "AVX-512 CPU without AVX512-BF16 or AMX: oneDNN emulates bf16"),
        ({"onednn_bf16": False}, False, "no bf16 kernels for this CPU"),
        ({"onednn_bf16": False, "avx512_bf16": True}, False, "no bf16 kernels"),  # oneDNN's check comes first
        ({"onednn": False, "avx512_bf16": True}, False, "without oneDNN"),
        ({"machine": "aarch64"}, True, "Arm"),
        ({"machine": "aarch64", "onednn_bf16": False}, False, "no bf16 kernels"),
    ],
)
def test_cpu_bf16_support_follows_torch_capability_checks(monkeypatch, cpu, native, reason):
    mock_cpu(monkeypatch, **cpu)
    support = bf16_support("cpu")
    assert support.native is native
    assert reason in support.reason


def test_auto_picks_float32_where_bf16_is_emulated(monkeypatch):
    emulating_cpu(monkeypatch)
    settings = fastest_settings("cpu")
    assert settings.dtype == torch.float32
    assert settings.memory_format == torch.channels_last
    assert "emulates bf16" in settings.reason
    assert not settings.needs_grad_scaler
    assert settings.describe().startswith("float32 + channels_last on cpu: AVX-512 CPU without")


def test_auto_picks_bf16_where_it_is_native(monkeypatch):
    native_cpu(monkeypatch)
    settings = fastest_settings("cpu")
    assert settings.dtype == torch.bfloat16
    assert settings.channels_last
    assert "AVX512-BF16" in settings.reason


@pytest.mark.parametrize(
    ("cpu", "limit", "channels_last", "reason"),
    [
        ({}, "", True, "AVX-512 convolutions prefer channels_last"),  # AVX-512, emulated bf16
        ({"avx512_bf16": True}, "", True, "prefer channels_last"),
        ({"avx512_bf16": True}, "AVX512_CORE", True, "prefer channels_last"),
        ({"onednn_bf16": False}, "", False, "this CPU has no AVX-512"),  # AVX2: contiguous
        ({"avx512_bf16": True}, "AVX2", False, "hidden by ONEDNN_MAX_CPU_ISA=AVX2"),
        ({"machine": "aarch64"}, "", False, "only in oneDNN's x86 AVX-512 kernels"),
        ({"onednn": False}, "", False, "only in oneDNN's x86 AVX-512 kernels"),
    ],
)
def test_auto_picks_channels_last_only_where_onednn_runs_avx512(monkeypatch, cpu, limit, channels_last, reason):
    mock_cpu(monkeypatch, **cpu)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    settings = fastest_settings("cpu")
    assert settings.channels_last is channels_last
    assert reason in settings.reason


@pytest.mark.parametrize(("device", "error", "match"), [(7, TypeError, "'cuda:7'"), ("gpu", ValueError, "'gpu'")])
def test_a_device_index_or_unknown_name_is_refused(device, error, match):
    with pytest.raises(error, match=rf"`device` .*{match}"):
        fastest_settings(device)


@pytest.mark.parametrize(("limit", "native"), [("AVX512_CORE", False), ("avx2", False), ("ALL", True), ("", True)])
def test_onednn_isa_limit_hides_native_bf16(monkeypatch, limit, native):
    native_cpu(monkeypatch)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    assert bf16_support("cpu").native is native
    assert fastest_settings("cpu").dtype == (torch.bfloat16 if native else torch.float32)
    if not native:
        assert f"ONEDNN_MAX_CPU_ISA={limit.upper()}" in bf16_support("cpu").reason


def test_this_machine_agrees_with_torch():
    # No mock: on this machine, native means oneDNN has bf16 kernels and the CPU has the instructions.
    support = bf16_support("cpu")
    if support.native and torch.backends.mkldnn.is_available():
        assert torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert fastest_settings("cpu").dtype == (torch.bfloat16 if support.native else torch.float32)
    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert not fastest_settings("cpu").channels_last  # no AVX-512 (e.g. an AVX2 CPU): contiguous


# GPUs and other devices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "allow_fp16", "dtype", "memory_format"),
    [
        ((9, 0), False, torch.bfloat16, torch.channels_last),  # H100
        ((8, 0), True, torch.bfloat16, torch.channels_last),  # A100: bf16 even when fp16 is allowed
        ((7, 5), False, torch.float32, torch.contiguous_format),  # T4: no bf16 tensor cores
        ((7, 0), True, torch.float16, torch.channels_last),  # V100 with a GradScaler
        ((6, 1), True, torch.float32, torch.contiguous_format),  # P100-class: no tensor cores
    ],
)
def test_cuda_settings_follow_the_compute_capability(monkeypatch, capability, allow_fp16, dtype, memory_format):
    mock_gpu(monkeypatch, capability)
    settings = fastest_settings("cuda:0", allow_fp16=allow_fp16)
    assert settings.device == torch.device("cuda:0")
    assert (settings.dtype, settings.memory_format) == (dtype, memory_format)
    assert settings.needs_grad_scaler is (dtype == torch.float16)
    assert f"{capability[0]}.{capability[1]}" in settings.reason


def test_rocm_has_bf16(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert bf16_support("cuda").native


def test_unknown_device_is_float32():
    settings = fastest_settings("meta")
    assert (settings.dtype, settings.memory_format) == (torch.float32, torch.contiguous_format)
    with settings.autocast():  # a device without autocast: a no-op context
        pass


# Warnings -----------------------------------------------------------------------------------------


def test_forcing_bf16_on_an_emulating_cpu_warns(monkeypatch):
    emulating_cpu(monkeypatch)
    expected = r"bfloat16 autocast on cpu is not native here \(AVX-512 CPU without"
    with pytest.warns(UserWarning, match=expected) as record:
        assert warn_if_emulated("cpu", torch.bfloat16)
    assert record[0].filename == __file__  # points to the caller


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_no_warning_for_float32_or_native_bf16(monkeypatch, dtype):
    native_cpu(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_emulated("cpu", dtype)


def test_fp16_warnings(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: False)
    with pytest.warns(UserWarning, match="float16 autocast on cpu is not native"):
        warn_if_emulated("cpu", torch.float16)
    mock_gpu(monkeypatch, (6, 1))
    with pytest.warns(UserWarning, match=r"compute capability 6.1 < 7.0"):
        warn_if_emulated("cuda", torch.float16)
    mock_gpu(monkeypatch, (7, 0))
    assert not warn_if_emulated("cuda", torch.float16)


def test_precision_scope(monkeypatch):
    native_cpu(monkeypatch)
    x = torch.rand(2, 3, 4, 4)
    same, context = precision_scope(None, x)
    assert same is x
    with context:
        assert not torch.is_autocast_enabled("cpu")
    converted, context = precision_scope("auto", x)
    assert converted.is_contiguous(memory_format=torch.channels_last)
    assert_close(converted, x, rtol=0, atol=0)
    with context:
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.is_autocast_enabled("cpu")
    flat = torch.rand(2, 12)
    assert precision_scope("auto", flat)[0] is flat  # only 4-D inputs change layout
    with torch.autocast("cpu", dtype=torch.bfloat16), precision_scope("float32", x)[1]:
        assert not torch.is_autocast_enabled("cpu")


def test_fastest_settings_compiles_without_graph_break():
    def step(x: torch.Tensor) -> torch.Tensor:
        with fastest_settings(x.device).autocast():
            return torch.nn.functional.linear(x, x)

    x = torch.rand(3, 3)
    assert torch.compile(step, fullgraph=True, backend="eager")(x).dtype == step(x).dtype


# The distiller's precision= -----------------------------------------------------------------------


def _distiller(**kwargs: object) -> ABSLDStep:
    return ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, steps=2, random_start=None, **kwargs).eval()


def test_distiller_auto_runs_float32_where_bf16_is_emulated(monkeypatch):
    emulating_cpu(monkeypatch)
    x, y = tiny_batch(8, C, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto = _distiller(precision="auto")(x, y)
    default = _distiller()(x, y)
    assert auto.student_adv_logits.dtype == torch.float32
    assert auto.x_adv.is_contiguous(memory_format=torch.channels_last)
    # Same computation in another layout: equal up to the convolutions' summation order.
    assert_close(auto.x_adv, default.x_adv, rtol=0, atol=1e-6)
    assert_close(auto.loss, default.loss, rtol=1e-5, atol=1e-7)


def test_distiller_auto_runs_bf16_where_it_is_native(monkeypatch):
    native_cpu(monkeypatch)
    x, y = tiny_batch(8, C, seed=0)
    out = _distiller(precision="auto")(x, y)
    assert out.student_adv_logits.dtype == torch.bfloat16
    assert out.teacher_logits.dtype == torch.bfloat16
    assert out.loss.dtype == torch.float32
    assert out.x_adv.dtype == torch.float32


def test_distiller_warns_when_bf16_is_forced_on_an_emulating_cpu(monkeypatch):
    emulating_cpu(monkeypatch)
    x, y = tiny_batch(8, C, seed=0)
    distiller = _distiller(precision="bfloat16")
    with pytest.warns(UserWarning, match="bfloat16 autocast on cpu is not native") as record:
        out = distiller(x, y)
    assert record[0].filename == __file__
    assert out.student_adv_logits.dtype == torch.bfloat16
    # A bf16 autocast around the call is forcing bf16 too.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    with pytest.warns(UserWarning, match="bfloat16 autocast on cpu is not native"), autocast:
        _distiller()(x, y)


def test_distiller_float32_overrides_the_callers_autocast(monkeypatch):
    native_cpu(monkeypatch)
    x, y = tiny_batch(8, C, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _distiller(precision="float32")(x, y)
    assert out.student_adv_logits.dtype == torch.float32


def test_distiller_rejects_an_unknown_precision():
    with pytest.raises(ValueError, match=r"Expected `precision` to be one of 'auto', 'float32'.*but got 'bf16'"):
        _distiller(precision="bf16")
    with pytest.raises(TypeError, match=r"Expected `precision` to be None or one of .* but got dtype"):
        _distiller(precision=torch.bfloat16)


def test_the_registry_passes_precision_through():
    from torch_absld import methods

    step = methods.create("rslad", tiny_cnn(C, seed=1), num_classes=C, teacher=tiny_cnn(C, seed=2), precision="auto")
    assert step.precision == "auto"
    assert "precision='auto'" in repr(step)


@pytest.mark.parametrize("name", ["sat", "trades", "ard", "rslad", "adaad", "frl", "bat", "cfa", "fair-ard", "absld"])
@pytest.mark.parametrize(("cpu", "dtype"), [(native_cpu, torch.bfloat16), (emulating_cpu, torch.float32)])
def test_every_method_runs_in_its_precision(monkeypatch, name, cpu, dtype):
    from torch_absld import methods

    cpu(monkeypatch)
    student = tiny_cnn(C, seed=1)
    seen: list[torch.dtype] = []
    student.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    step = methods.create(name, student, num_classes=C, teacher=tiny_cnn(C, seed=2), precision="auto", steps=2)
    x, y = tiny_batch(8, C, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = step.train()(x, y)
    out.loss.backward()
    assert seen
    assert set(seen) == {dtype}
    assert torch.isfinite(out.loss)
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in student.parameters())


@pytest.mark.parametrize("choice", [None, "auto", "float32", "bfloat16"])
def test_precision_scope_leaves_devices_without_autocast_alone(choice):
    x = torch.empty(2, 3, 4, 4, device="meta")
    same, context = precision_scope(choice, x)
    assert same is x
    with context:
        assert not torch.is_autocast_enabled("cpu")
