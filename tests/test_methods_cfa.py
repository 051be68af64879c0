from __future__ import annotations

import copy

import pytest
import torch
from _baselines import assert_same_steps, train_epoch
from _fair import C, class_accuracies, tensor64, validation_split
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import PGDConfig, methods, pgd
from torch_absld.losses.cfa import CFALoss, cfa_loss
from torch_absld.methods.cfa import CFA_ATTACK, CFAOutput, CFAStep

EPS, STEP, DECAY = 16 / 255, 4 / 255, 0.7


def test_defaults_are_the_papers():
    step = CFAStep(tiny_cnn(C), C)
    assert step.attack.config == PGDConfig(
        eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=1e-3
    )
    ctrl, fawa = step.loss_fn.calibration, step.fawa
    assert (ctrl.lambda_eps, ctrl.beta, ctrl.lambda_beta, ctrl.begin_epoch, ctrl.scale_step) == (
        0.3,
        6.0,
        0.5,
        0,
        False,
    )
    assert fawa is not None
    assert (fawa.decay, fawa.threshold, fawa.start_epoch, fawa.worst_count) == (0.85, 0.2, 50, 1)
    assert fawa.attack == PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="uniform")
    assert step.evaluation_model is step.student  # nothing averaged yet


def test_two_epochs_equal_the_hand_written_loop():
    student = tiny_cnn(C, seed=1)
    reference = copy.deepcopy(student)
    batches = [tiny_batch(8, C, seed=s) for s in range(3)]
    validation = validation_split()
    options = {"steps": 3, "eps": EPS, "step_size": STEP, "validation_steps": 4, "validation": validation}
    fawa = {"start_epoch": 0, "threshold": 0.0, "decay": DECAY}
    step = CFAStep(student, C, **fawa, generator=torch.Generator().manual_seed(0), **options).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    got = []
    torch.manual_seed(5)  # dropout
    for _ in range(2):
        got.append(train_epoch(step, optimizer, batches))
        got[-1] += (step.on_epoch_end().clone(), step.loss_fn.calibration.class_beta.clone())
        assert step.fawa is not None
        got[-1] += (step.fawa.last_worst,)
    assert step.fawa.accepted == 2
    assert step.evaluation_model is step.fawa.module

    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.1), torch.Generator().manual_seed(0)
    config = CFA_ATTACK.replace(steps=3, eps=EPS, step_size=STEP)
    scale, class_beta = torch.ones(C, dtype=torch.float64), torch.full((C,), 6.0, dtype=torch.float64)
    correct, counts, average = torch.zeros(C), torch.zeros(C), None

    def loss_of_batch(x, y):
        with torch.no_grad():
            p = torch.softmax(reference.eval()(x), dim=1)
        reference.train()
        x_adv = pgd(reference, x, p, config=config, objective="kl", eps=EPS * scale[y], generator=generator)
        clean, adv = reference(x), reference(x_adv)
        correct.index_add_(0, y, (adv.argmax(1) == y).float())  # the epoch's training robust accuracy
        counts.index_add_(0, y, torch.ones(len(y)))
        return cfa_loss(student_adv=adv, student_clean=clean, target=y, class_beta=class_beta)

    torch.manual_seed(5)
    for epoch in range(2):
        correct.zero_(), counts.zero_()
        assert_same_steps(got[epoch][:2], reference, optimizer, batches, loss_of_batch)
        # FAWA (threshold 0: every epoch enters; the first is copied), then Eqs. (6) and (7).
        worst = min(class_accuracies(reference, validation, eps=EPS, step_size=STEP, steps=4)[0][1])
        assert got[epoch][4] == worst
        state = {k: v.detach().double().clone() for k, v in reference.state_dict().items()}
        average = state if average is None else {k: DECAY * average[k] + (1 - DECAY) * state[k] for k in state}
        t = (correct / counts).double()
        scale, class_beta = 0.3 + t, (0.5 + t) * 6.0
        assert_close(got[epoch][2], scale)
        assert_close(got[epoch][3], class_beta)
    for key, value in step.fawa.module.state_dict().items():
        if value.is_floating_point():
            assert_close(value.double(), average[key], rtol=1e-6, atol=1e-7, msg=key)
    assert not torch.equal(scale, torch.ones(C, dtype=torch.float64))


def test_output_and_eval_mode_records_nothing():
    step = CFAStep(tiny_cnn(C, seed=2), C, steps=2, fawa=False, generator=torch.Generator().manual_seed(1))
    calibration = step.loss_fn.calibration
    calibration.scale.copy_(tensor64([0.3, 1.3, 1.0, 0.5, 0.8]))
    x, y = tiny_batch(8, C)
    out = step.train()(x, y)
    assert isinstance(out, CFAOutput)
    assert_close(out.radii, (8 / 255) * calibration.scale[y])
    assert ((out.x_adv - x).abs().flatten(1).amax(1) <= out.radii.float() + 1e-6).all()
    assert_close(out.loss, out.natural_term + out.robust_term)
    assert calibration.sample_counts.sum() == 8
    step.eval()(x, y)
    assert calibration.sample_counts.sum() == 8
    assert step.fawa is None
    step.on_epoch_end()  # without FAWA no validation split is needed


def test_validation_is_needed_from_fawas_start_epoch():
    step = CFAStep(tiny_cnn(C), C, steps=1, start_epoch=1)
    step.on_epoch_end()
    with pytest.raises(RuntimeError, match="CFAStep measures the student on a validation split"):
        step.on_epoch_end()
    step.on_epoch_end(validation_split())
    assert step.fawa is not None
    assert step.fawa.epochs_stepped == 2


def test_create_ignores_a_teacher_and_routes_the_options():
    step = methods.create(
        "cfa", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), lambda_eps=0.5, decay=0.88, threshold=0.24, steps=2
    )
    assert isinstance(step, CFAStep)
    assert step.teacher is None
    assert step.fawa is not None
    assert (step.loss_fn.calibration.lambda_eps, step.fawa.decay, step.fawa.threshold) == (0.5, 0.88, 0.24)
    with pytest.raises(ValueError, match=r"no weight-averaging options \['decay'\] with `fawa=False`"):
        methods.create("cfa", tiny_cnn(C), num_classes=C, fawa=False, decay=0.9)
    with pytest.raises(ValueError, match=r"either `loss` or loss options \['beta'\]"):
        methods.create("cfa", tiny_cnn(C), num_classes=C, loss=CFALoss(C), beta=3.0)
