from __future__ import annotations

import copy

import pytest
import torch
from _dist import run_ranks
from _models import tiny_batch, tiny_cnn
from _reference import absld_loss_reference
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDLoss, ABSLDOutput, ABSLDStep, KLPGDAttack
from torch_absld.methods import mark_ddp_local_state

C = 5
EPS = 8 / 255


def _batches(n_batches: int = 3, n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [tiny_batch(n, C, seed=10 + i) for i in range(n_batches)]


def _explicit_epoch(student, teacher, loss_fn, attack, optimizer, batches):
    """The README loop, written out with the three modules."""
    losses, grads = [], []
    for x, y in batches:
        with torch.no_grad():
            teacher_logits = teacher(x)
        x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
        loss = loss_fn(student(x_adv), student(x), teacher_logits, y)
        optimizer.zero_grad()
        loss.backward()
        grads.append([p.grad.clone() for p in student.parameters()])
        losses.append(loss.detach())
        optimizer.step()
    return losses, grads, [t.clone() for t in loss_fn.step()]


def _distiller_epoch(distiller, optimizer, batches):
    losses, grads = [], []
    for x, y in batches:
        out = distiller(x, y)
        optimizer.zero_grad()
        out.loss.backward()
        grads.append([p.grad.clone() for p in distiller.student.parameters()])
        losses.append(out.loss.detach())
        optimizer.step()
    return losses, grads, [t.clone() for t in distiller.on_epoch_end()]


@pytest.mark.parametrize("coupling", ["separate", "product"])
def test_equals_explicit_loop(coupling):
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2).eval()
    loss_kwargs = {"lr": 0.3, "coupling": coupling}
    attack_kwargs = {"eps": 8 / 255, "step_size": 2 / 255, "steps": 3}
    batches = _batches()

    ref_student, ref_teacher = copy.deepcopy(student), copy.deepcopy(teacher)
    ref_loss = ABSLDLoss(C, **loss_kwargs)
    ref_attack = KLPGDAttack(ref_student, **attack_kwargs)
    ref_opt = torch.optim.SGD(ref_student.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # the second epoch runs with temperatures moved by the first
        torch.manual_seed(0)
        want = _explicit_epoch(ref_student, ref_teacher, ref_loss, ref_attack, ref_opt, batches)

    distiller = ABSLDStep(student, teacher, C, **loss_kwargs, **attack_kwargs).train()
    opt = torch.optim.SGD(distiller.student.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        torch.manual_seed(0)
        got = _distiller_epoch(distiller, opt, batches)

    assert_close(got[0], want[0], rtol=0, atol=0)
    for got_step, want_step in zip(got[1], want[1], strict=True):
        assert_close(got_step, want_step, rtol=0, atol=0)
    assert_close(got[2], want[2], rtol=0, atol=0)
    assert not torch.equal(got[2][0], torch.ones(C)), "the temperatures should have moved"
    for p, q in zip(distiller.student.parameters(), ref_student.parameters(), strict=True):
        assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("coupling", ["separate", "product"])
def test_output_parts_match_reference(coupling):
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    loss = ABSLDLoss(C, alpha=0.7, coupling=coupling)
    loss.adv.temperatures.copy_(torch.tensor([0.6, 1.0, 1.5, 2.0, 3.0]))
    loss.clean.temperatures.copy_(torch.tensor([2.0, 0.7, 1.0, 1.2, 0.9]))
    distiller = ABSLDStep(student, teacher, C, loss=loss, steps=2)
    x, y = tiny_batch(8, C)
    torch.manual_seed(0)
    out = distiller(x, y)
    assert isinstance(out, ABSLDOutput)
    s_adv, s_clean, t = (
        v.detach().double() for v in (out.student_adv_logits, out.student_clean_logits, out.teacher_logits)
    )
    tau_adv, tau_clean = (v.double() for v in distiller.temperatures)
    want_adv = absld_loss_reference(s_adv, s_clean, t, y, tau_adv, tau_clean, alpha=1.0, coupling=coupling)
    want_clean = absld_loss_reference(s_adv, s_clean, t, y, tau_adv, tau_clean, alpha=0.0, coupling=coupling)
    assert_close(out.adv_kl.double(), torch.tensor(want_adv, dtype=torch.float64), rtol=1e-5, atol=1e-7)
    assert_close(out.clean_kl.double(), torch.tensor(want_clean, dtype=torch.float64), rtol=1e-5, atol=1e-7)
    assert_close(out.loss.detach(), 0.7 * out.adv_kl + 0.3 * out.clean_kl)
    assert not out.adv_kl.requires_grad
    assert not out.clean_kl.requires_grad
    assert (out.x_adv - x).abs().max() <= 8 / 255 + 1e-7
    assert_close(out.teacher_logits, teacher(x))  # teacher in eval mode, on the clean batch


def test_teacher_frozen_and_kept_in_eval_mode():
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2).train()
    distiller = ABSLDStep(student, teacher, C, steps=1)
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    distiller.train()
    assert student.training
    assert not teacher.training
    assert distiller.loss_fn.training
    stats = teacher[1].running_mean.clone()
    x, y = tiny_batch(8, C)
    distiller(x, y).loss.backward()
    assert_close(teacher[1].running_mean, stats, rtol=0, atol=0)  # eval-mode BatchNorm: untouched
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert distiller.loss_fn.adv.count.sum() == 8
    assert distiller.loss_fn.clean.count.sum() == 8


def test_eval_mode_records_no_risk():
    distiller = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, steps=1).eval()
    x, y = tiny_batch(8, C)
    distiller(x, y)
    assert distiller.loss_fn.adv.count.sum() == 0
    assert distiller.loss_fn.clean.count.sum() == 0
    assert not distiller.student.training


def test_to_moves_teacher_and_controllers():
    distiller = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, steps=1).to(torch.float64)
    assert distiller.teacher[0].weight.dtype == torch.float64
    assert distiller.student[0].weight.dtype == torch.float64
    x, y = tiny_batch(4, C)
    out = distiller(x.double(), y)
    assert out.loss.dtype == torch.float64


def _trained_distiller(**kwargs) -> ABSLDStep:
    distiller = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, steps=1, lr=0.5, **kwargs)
    for x, y in _batches(2):
        distiller(x, y).loss.backward()
    distiller.on_epoch_end()
    x, y = tiny_batch(8, C, seed=99)
    distiller(x, y)  # a partial epoch in the accumulators
    return distiller


def test_state_dict_without_teacher_round_trip():
    distiller = _trained_distiller()
    state = distiller.state_dict()
    assert not any(key.startswith("teacher.") for key in state)
    assert {"student.0.weight", "loss_fn.adv.temperatures", "loss_fn.clean.accumulator"} <= state.keys()

    teacher = tiny_cnn(C, seed=3)
    teacher_before = copy.deepcopy(teacher.state_dict())
    fresh = ABSLDStep(tiny_cnn(C, seed=4), teacher, C, steps=1, lr=0.5)
    fresh.load_state_dict(state)  # strict: the teacher's absence is not an error
    for key, value in distiller.state_dict().items():
        assert_close(fresh.state_dict()[key], value, rtol=0, atol=0, msg=key)
    for key, value in teacher_before.items():
        assert_close(teacher.state_dict()[key], value, rtol=0, atol=0)
    assert fresh.loss_fn.adv.epochs_stepped == 1


def test_state_dict_with_teacher():
    distiller = _trained_distiller(teacher_in_state_dict=True)
    state = distiller.state_dict()
    assert "teacher.0.weight" in state
    fresh = ABSLDStep(tiny_cnn(C, seed=4), tiny_cnn(C, seed=3), C, steps=1, teacher_in_state_dict=True)
    fresh.load_state_dict(state)
    assert_close(fresh.teacher[0].weight, distiller.teacher[0].weight, rtol=0, atol=0)
    # A distiller nested in a bigger module: the prefix is handled.
    outer = nn.ModuleDict({"inner": ABSLDStep(tiny_cnn(C, seed=4), tiny_cnn(C, seed=3), C, steps=1)})
    outer_state = outer.state_dict()
    assert "inner.student.0.weight" in outer_state
    assert not any("teacher" in k for k in outer_state)
    outer.load_state_dict(outer_state)


def test_a_checkpoint_teacher_is_skipped_unless_the_step_keeps_its_teacher_in_state():
    state = _trained_distiller(teacher_in_state_dict=True).state_dict()
    teacher = tiny_cnn(C, seed=5)
    before = copy.deepcopy(teacher.state_dict())
    fresh = ABSLDStep(tiny_cnn(C, seed=4), teacher, C, steps=1)
    with pytest.warns(UserWarning, match=r"Skipped \d+ `teacher\.\*` key.*teacher_in_state_dict=True"):
        fresh.load_state_dict(state)
    for key, value in before.items():
        assert_close(teacher.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert_close(fresh.student[0].weight, state["student.0.weight"], rtol=0, atol=0)


def test_mark_ddp_local_state():
    distiller = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C)
    ignored = set(distiller._ddp_params_and_buffers_to_ignore)
    assert {
        "loss_fn.adv.accumulator",
        "loss_fn.clean.accumulator",
        "teacher.0.weight",
        "teacher.1.running_mean",
    } <= ignored
    assert not any(name.startswith("student.") for name in ignored)
    wrapper = nn.ModuleDict({"d": distiller, "extra": ABSLDLoss(3)})
    added = mark_ddp_local_state(wrapper)
    assert "d.loss_fn.adv.accumulator" in added
    assert "extra.clean.accumulator" in added
    assert mark_ddp_local_state(wrapper) == []  # idempotent


def test_loss_argument_forms():
    loss = ABSLDLoss(C, alpha=0.5)
    distiller = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, loss=loss)
    assert distiller.loss_fn is loss
    from_kwargs = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, student_temperature=2.0)
    assert from_kwargs.attack.student_temperature == 2.0
    assert from_kwargs.loss_fn.student_temperature == 2.0


def test_bad_arguments():
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    with pytest.raises(ValueError, match=r"`loss` for num_classes = 5.*num_classes = 3"):
        ABSLDStep(student, teacher, C, loss=ABSLDLoss(3))
    with pytest.raises(TypeError, match=r"`loss` to be an ABSLDLoss"):
        ABSLDStep(student, teacher, C, loss=0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`teacher` to be an nn.Module"):
        ABSLDStep(student, "teacher", C)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`student` and `teacher` to be different"):
        ABSLDStep(student, student, C)
    with pytest.raises(ValueError, match=r"`eps` >= 0"):
        ABSLDStep(student, teacher, C, eps=-1.0)
    distiller = ABSLDStep(student, teacher, C, steps=1)
    x, y = tiny_batch(8, C)
    with pytest.raises(ValueError, match=r"`target` values in \[0, 5\)"):
        distiller(x, y + 5)
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\) with N = 8"):
        distiller(x, y[:4])
    with pytest.raises(ValueError, match=r"`input` values in \[clip_min, clip_max\]"):
        distiller(x * 3 - 1, y)


# Data parallelism ---------------------------------------------------------------------------


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)  # no BatchNorm: a sample's outputs do not depend on its batch
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.Tanh(), nn.Linear(16, C))


def _ddp_run(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    distiller = ABSLDStep(_mlp(1), _mlp(2), C, steps=2, random_start=None, lr=0.5)
    model = nn.parallel.DistributedDataParallel(distiller) if world_size > 1 else distiller
    optimizer = torch.optim.SGD(distiller.student.parameters(), lr=0.5)
    for _ in range(2):
        for x, y in _batches(3, n=16):
            mine = slice(rank * 16 // world_size, (rank + 1) * 16 // world_size)
            out = model(x[mine], y[mine])
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
        distiller.on_epoch_end()
    tau_adv, tau_clean = distiller.temperatures
    return {
        "tau_adv": tau_adv.clone(),
        "tau_clean": tau_clean.clone(),
        "weight": distiller.student[1].weight.detach().clone(),
    }


@pytest.mark.distributed
def test_ddp_wrapped_distiller_equals_one_process_on_the_union(tmp_path):
    """DDP must neither broadcast the per-rank risk sums nor touch the teacher."""
    want = _ddp_run(0, 1)
    assert not torch.equal(want["tau_adv"], torch.ones(C))
    results = run_ranks(_ddp_run, tmp_path)
    for got in results:
        for key, value in want.items():
            assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert torch.equal(results[0]["tau_adv"], results[1]["tau_adv"])


# Low precision ------------------------------------------------------------------------------


def test_distiller_cast_to_bf16_trains_and_records():
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, C))
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, C))
    distiller = ABSLDStep(student, teacher, C, steps=2, lr=0.3).to(torch.bfloat16).train()
    x, y = tiny_batch(10, C)
    out = distiller(x.to(torch.bfloat16), y)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in distiller.student.parameters())
    assert torch.equal(distiller.loss_fn.adv.count, torch.bincount(y, minlength=C).double())
    tau_adv, _ = distiller.on_epoch_end()
    assert tau_adv.dtype == torch.float32
    assert (out.x_adv.float() - x.to(torch.bfloat16).float()).abs().max() <= EPS + 2**-8


# One validation per step ----------------------------------------------------------------------


@pytest.mark.parametrize(("validate_args", "reads"), [(True, 1), (False, 0)])
def test_one_host_read_per_training_step(monkeypatch, validate_args, reads):
    """The labels and the input range are checked once per step, in one transfer from the device."""
    distiller = ABSLDStep(_mlp(1), _mlp(2), C, steps=2, validate_args=validate_args).train()
    x, y = tiny_batch(8, C)
    counted = []
    for name in ("tolist", "item", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name):
            counted.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counting)
    out = distiller(x, y)
    monkeypatch.undo()
    assert counted == ["tolist"] * reads
    out.loss.backward()
    with pytest.raises(ValueError, match=r"`target` values in \[0, 5\)"):
        ABSLDStep(_mlp(1), _mlp(2), C, steps=1)(x, y + 5)
