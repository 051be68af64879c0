from __future__ import annotations

import copy

import pytest
import torch
from _models import tiny_batch, tiny_cnn
from _reads import count_reads
from torch import nn

from torch_absld import ABSLDLoss, ABSLDStep, PGDConfig, methods
from torch_absld.losses.sat import sat_loss
from torch_absld.methods import AdversarialStep, Method, TrainingStep
from torch_absld.methods.sat import SATStep

C = 5


def test_available_lists_the_methods():
    assert methods.available() == ("absld", "adaad", "ard", "bat", "cfa", "fair-ard", "frl", "rslad", "sat", "trades")
    assert methods.get("fair-ard").title == "Fair-ARD"
    assert methods.get("rslad").step is ABSLDStep


class _ToyStep(SATStep):
    """SAT with a fixed radius: a method defined outside the package."""


def test_a_registered_method_is_available_and_created():
    toy = Method(name="toy", title="Toy", step=_ToyStep, loss=sat_loss, needs_teacher=False, defaults={"eps": 0.01})
    assert methods.register(toy) is toy
    try:
        assert "toy" in methods.available()
        assert "reduction" in methods.options("toy")
        step = methods.create("toy", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), steps=1)
        assert isinstance(step, _ToyStep)
        assert step.teacher is None
        assert step.attack.eps == 0.01
        with pytest.raises(ValueError, match="'toy' is registered"):
            methods.register(Method(name="toy", title="Toy", step=SATStep, loss=sat_loss, needs_teacher=False))
    finally:
        assert methods.unregister("toy") is toy
    assert "toy" not in methods.available()


@pytest.mark.parametrize("validate_args", [True, False])
@pytest.mark.parametrize("name", methods.available())
def test_a_step_reads_the_device_at_most_once(name, validate_args):
    """One read per step (the boundary check) with checks on, none without."""
    x, y = tiny_batch(8, C)
    options = {"validation": [(x, y)]} if methods.get(name).needs_validation else {}
    step = methods.create(
        name, tiny_cnn(C, 1), num_classes=C, teacher=tiny_cnn(C, 2), steps=2, validate_args=validate_args, **options
    ).train()
    for _ in range(2):  # the first step also probes the student's width once (no read)
        with count_reads() as reads:
            step(x, y).loss.backward()
        assert reads.count == int(validate_args), reads.calls


def _validation_split():
    x, y = tiny_batch(10, C, seed=20)
    return [(x, y % C), (x.flip(0), torch.arange(10) % C)]


# What a method needs besides the common options: FRL and CFA read a validation split at the end of each epoch
# (CFA's weight averaging from its first epoch here, so that the average is part of the state).
OPTIONS = {
    "frl": {"validation": _validation_split()},
    "cfa": {"validation": _validation_split(), "start_epoch": 0, "threshold": 0.0},
}


@pytest.mark.parametrize("name", methods.available())
def test_every_method_keeps_the_step_contract(name):
    options = OPTIONS.get(name, {})
    step = methods.create(name, tiny_cnn(C, seed=1), num_classes=C, teacher=tiny_cnn(C, seed=2), steps=1, **options)
    assert isinstance(step, TrainingStep)
    x, y = tiny_batch(8, C)
    out = step.train()(x, y)
    out.loss.backward()
    step.on_epoch_end()
    assert not any(key.startswith("teacher.") for key in step.state_dict())
    fresh = methods.create(name, tiny_cnn(C, seed=3), num_classes=C, teacher=tiny_cnn(C, seed=2), steps=1, **options)
    fresh.load_state_dict(step.state_dict())


def test_create_absld_routes_loss_and_attack_options():
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    step = methods.create(
        "absld", student, num_classes=C, teacher=teacher, lr=0.3, coupling="product", eps=0.1, steps=2, generator=None
    )
    assert isinstance(step, ABSLDStep)
    assert (step.loss_fn.adv.lr, step.loss_fn.coupling) == (0.3, "product")
    assert step.attack.config == PGDConfig(eps=0.1, steps=2)
    # One step of the created module equals the same module built by hand (on copies of the networks).
    by_hand = ABSLDStep(copy.deepcopy(student), copy.deepcopy(teacher), C, lr=0.3, coupling="product", eps=0.1, steps=2)
    x, y = tiny_batch(8, C)
    torch.manual_seed(0)
    got = step(x, y).loss
    torch.manual_seed(0)
    assert torch.equal(got, by_hand(x, y).loss)


def test_rslad_is_absld_with_frozen_temperatures():
    rslad = methods.create("rslad", tiny_cnn(C, seed=1), num_classes=C, teacher=tiny_cnn(C, seed=2), steps=1)
    assert rslad.loss_fn.adapt == "none"
    x, y = tiny_batch(8, C)
    rslad.train()(x, y)
    assert torch.equal(rslad.on_epoch_end()[0], torch.ones(C))


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        (
            "sat2",
            {"teacher": nn.Linear(2, 2)},
            "`name` to be one of 'absld', 'adaad', 'ard', 'bat', 'cfa', 'fair-ard', 'frl', 'rslad', 'sat', 'trades', "
            "but got 'sat2'",
        ),
        ("absld", {}, "Expected a `teacher` for the method 'absld'"),
        ("rslad", {}, "Expected a `teacher` for the method 'rslad'"),
        ("rslad", {"teacher": nn.Linear(2, 2), "adapt": "both"}, "`adapt` = 'none' for the method 'rslad'"),
        (
            "absld",
            {"teacher": nn.Linear(2, 2), "loss": ABSLDLoss(2), "lr": 0.1},
            r"either `loss` or loss options \['lr'\]",
        ),
        ("sat", {"model_mode": "training"}, r"`model_mode` to be one of 'eval', 'train', but got 'training'"),
    ],
)
def test_create_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        methods.create(name, nn.Linear(2, 2), num_classes=2, **kwargs)


TEACHER_FREE = ("sat", "trades", "frl", "cfa", "bat")


def _create(name: str, student_seed: int = 1, **options):
    generator = torch.Generator().manual_seed(0)
    return methods.create(
        name,
        tiny_cnn(C, seed=student_seed),
        num_classes=C,
        teacher=tiny_cnn(C, seed=2),
        steps=2,
        generator=generator,
        **{**OPTIONS.get(name, {}), **options},
    )


def _train(step, optimizer, batches) -> None:
    for x, y in batches:
        loss = step(x, y).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name", methods.available())
def test_resume_mid_epoch_is_bit_identical(name):
    """A state_dict round trip in the middle of the second epoch, then the rest: the same as no interruption."""
    batches = [tiny_batch(8, C, seed=s) for s in range(5)]
    torch.manual_seed(7)
    step = _create(name).train()
    optimizer = torch.optim.SGD(step.student.parameters(), lr=0.1, momentum=0.9)
    _train(step, optimizer, batches[:3])
    step.on_epoch_end()
    _train(step, optimizer, batches[3:])
    step.on_epoch_end()
    want = step.state_dict()

    torch.manual_seed(7)
    step = _create(name).train()
    optimizer = torch.optim.SGD(step.student.parameters(), lr=0.1, momentum=0.9)
    _train(step, optimizer, batches[:3])
    step.on_epoch_end()
    _train(step, optimizer, batches[3:4])
    saved = copy.deepcopy((step.state_dict(), optimizer.state_dict()))
    generator_state, rng_state = step.attack.generator.get_state(), torch.get_rng_state()
    assert not any(key.startswith("teacher.") for key in saved[0])
    del step, optimizer

    resumed = _create(name, student_seed=9).train()  # another student; the same teacher, not in the checkpoint
    resumed.load_state_dict(saved[0])
    optimizer = torch.optim.SGD(resumed.student.parameters(), lr=0.1, momentum=0.9)
    optimizer.load_state_dict(saved[1])
    resumed.attack.generator.set_state(generator_state)  # the attack's generator is the caller's
    torch.set_rng_state(rng_state)  # dropout
    _train(resumed, optimizer, batches[4:])
    resumed.on_epoch_end()
    got = resumed.state_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("name", methods.available())
def test_every_method_takes_the_common_hyperparameters(name):
    generator = torch.Generator().manual_seed(3)
    step = methods.create(
        name, tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), eps=0.05, step_size=0.01, steps=3, generator=generator
    )
    config = step.attack.config
    assert (config.eps, config.step_size, config.steps) == (0.05, 0.01, 3)
    assert step.attack.generator is generator
    assert (step.teacher is None) == (name in TEACHER_FREE)  # a teacher-free method ignores the teacher


@pytest.mark.parametrize("name", [n for n in methods.available() if n not in ("absld", "rslad")])
def test_bf16_autocast_keeps_the_loss_in_float32(name):
    x, y = tiny_batch(8, C, seed=3)
    losses = []
    for enabled in (False, True):
        step = _create(name, random_start=None).eval()
        assert isinstance(step, AdversarialStep)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            out = step(x, y)
        assert out.loss.dtype == torch.float32
        assert out.x_adv.dtype == torch.float32
        losses.append(out.loss.detach())
    assert torch.isfinite(losses[1])
    torch.testing.assert_close(losses[1], losses[0], rtol=0.1, atol=1e-3)


def test_options_list_what_create_takes():
    assert methods.options("trades")[:3] == ("attack", "beta", "clip_max")
    assert {"threshold", "validation", "beta", "eps"} <= set(methods.options("frl"))
    assert "adapt" in methods.options("rslad")
    with pytest.raises(TypeError, match=r"keyword options of the method 'sat' to be among attack, clip_max"):
        methods.create("sat", tiny_cnn(C), num_classes=C, beta=1.0)
    with pytest.raises(ValueError, match="Did you mean 'bat'"):
        methods.options("bta")


@pytest.mark.parametrize("name", methods.available())
def test_a_float64_batch_trains_a_float32_student_as_its_float32_copy(name):
    """The batch is cast to the student's parameter dtype at the boundary, in every method."""
    x, y = tiny_batch(8, C, seed=5)
    losses = []
    for batch in (x, x.double()):
        torch.manual_seed(0)
        out = _create(name, random_start=None).train()(batch, y)
        out.loss.backward()
        losses.append(out.loss.detach())
    assert losses[1].dtype == torch.float32
    torch.testing.assert_close(losses[1], losses[0])


@pytest.mark.parametrize("name", methods.available())
def test_a_train_mode_attack_moves_the_students_batch_norm_but_never_the_teachers(name):
    x, y = tiny_batch(8, C, seed=6)
    tracked = []
    for mode in ("eval", "train"):
        step = _create(name, model_mode=mode).train()
        teacher = None if step.teacher is None else copy.deepcopy(step.teacher.state_dict())
        step(x, y).loss.backward()
        assert step.attack.config.model_mode == mode
        tracked.append(int(step.student[1].num_batches_tracked))
        if teacher is not None:
            for key, value in step.teacher.state_dict().items():
                assert torch.equal(value, teacher[key]), key
    assert tracked[1] > tracked[0]  # the attack's forwards moved the running statistics
