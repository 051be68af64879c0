from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _baselines import assert_same_steps, hand_pgd, mlp, train_epoch, uniform_start
from _dist import run_ranks
from _models import tiny_batch, tiny_cnn
from torch import nn
from torch.testing import assert_close

from torch_absld import methods, pgd
from torch_absld.attack import CountingObjective
from torch_absld.class_weights import VulnerabilityWeights
from torch_absld.losses.fair_ard import FairARDLoss
from torch_absld.methods.fair_ard import FAIR_ARD_ATTACKS, FairARDOutput, FairARDStep

C = 5
EPS, STEP = 8 / 255, 2 / 255


def _batches(model: nn.Module, n_batches: int = 3, n: int = 12, seed: int = 0):
    """Labels mostly the model's own predictions, so that samples differ in how soon the attack flips them."""
    out = []
    for b in range(n_batches):
        x, y = tiny_batch(n, C, seed=seed + b)
        with torch.no_grad():
            predicted = model.eval()(x).argmax(dim=1)
        out.append((x, torch.where(torch.arange(n) % 4 == 0, y, predicted)))
    model.train()
    return out


@pytest.mark.parametrize("base", ["ard", "rslad"])
def test_two_epochs_equal_the_hand_written_loop(base):
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    reference, ref_teacher = copy.deepcopy(student), copy.deepcopy(teacher).eval()
    batches = _batches(copy.deepcopy(student))
    loss_options = {"base": base, "beta": 2.0}
    distiller = FairARDStep(
        student, teacher, C, **loss_options, steps=3, eps=16 / 255, generator=torch.Generator().manual_seed(0)
    ).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05)
    got, weights = [], []
    torch.manual_seed(5)
    for _ in range(2):
        got.append(train_epoch(distiller, optimizer, batches))
        weights.append(distiller.on_epoch_end().clone())

    loss_fn, counter = FairARDLoss(C, **loss_options), CountingObjective("ce" if base == "ard" else "kl")
    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.05), torch.Generator().manual_seed(0)
    config = FAIR_ARD_ATTACKS[base].replace(steps=3, eps=16 / 255)

    def loss_of_batch(x, y):
        with torch.no_grad():
            t = ref_teacher(x)
        counter.reset(y)
        attack_target = y if base == "ard" else torch.softmax(t, dim=1)
        x_adv = pgd(reference, x, attack_target, config=config, objective=counter, generator=generator)
        loss = loss_fn(reference(x_adv), reference(x), t, y)
        loss_fn.record(counter.counts, y)
        return loss

    torch.manual_seed(5)
    for epoch in range(2):
        assert_same_steps(got[epoch], reference, optimizer, batches, loss_of_batch)
        assert torch.equal(weights[epoch], loss_fn.step())
    assert not torch.equal(weights[0], torch.ones(C))  # the weights moved after the first epoch


def test_kappa_counts_the_correct_iterates_of_the_ard_attack():
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    before = copy.deepcopy(student).eval()
    (x, y), *_ = _batches(copy.deepcopy(student), n_batches=1)
    distiller = FairARDStep(student, teacher, C, steps=4, generator=torch.Generator().manual_seed(2)).train()
    out = distiller(x, y)
    assert isinstance(out, FairARDOutput)
    kappa = torch.zeros(len(y))

    def count(logits):
        kappa.add_((logits.argmax(dim=1) == y).float())

    start = uniform_start(x, EPS, seed=2)
    want = hand_pgd(before, x, start, lambda z: F.cross_entropy(z, y, reduction="sum"), 4, EPS, STEP, count)
    assert torch.equal(out.x_adv, want)
    assert torch.equal(out.kappa, kappa)
    assert torch.equal(
        distiller.loss_fn.vulnerability.sums[0], torch.zeros(C, dtype=torch.float64).index_add_(0, y, kappa.double())
    )
    distiller.eval()(x, y)  # eval mode records nothing
    assert distiller.loss_fn.vulnerability.sample_counts.sum() == len(y)


def test_create_routes_loss_options_and_errors():
    step = methods.create(
        "fair-ard", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), base="rslad", beta=1.0, steps=2
    )
    assert isinstance(step, FairARDStep)
    assert (step.loss_fn.base, step.loss_fn.vulnerability.beta, step.attack.steps) == ("rslad", 1.0, 2)
    assert step.attack.config.random_start == "normal"
    assert step.counter.objective == "kl"
    assert step.on_epoch_end() is step.class_weights
    with pytest.raises(ValueError, match=r"either `loss` or loss options \['beta'\]"):
        methods.create("fair-ard", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), loss=FairARDLoss(C), beta=1.0)
    with pytest.raises(ValueError, match="`loss` for num_classes = 5, but got a FairARDLoss with num_classes = 3"):
        FairARDStep(tiny_cnn(C), tiny_cnn(C, 2), C, loss=FairARDLoss(3))
    with pytest.raises(TypeError, match="`loss` to be a FairARDLoss or None"):
        FairARDStep(tiny_cnn(C), tiny_cnn(C, 2), C, loss=2.0)  # type: ignore[arg-type]


# Data parallelism ---------------------------------------------------------------------------


def _data(n_batches: int = 3, n: int = 16):
    model = mlp(C, seed=1)
    out = []
    for b in range(n_batches):
        x, y = tiny_batch(n, C, seed=20 + b)
        with torch.no_grad():
            predicted = model(x).argmax(dim=1)
        out.append((x, torch.where(torch.arange(n) % 3 == 0, y, predicted)))
    return out


def _ddp_run(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    results = {}
    for base in ("ard", "rslad"):
        distiller = FairARDStep(
            mlp(C, 1), mlp(C, 2), C, base=base, steps=2, eps=24 / 255, step_size=8 / 255, random_start=None
        )
        model = nn.parallel.DistributedDataParallel(distiller) if world_size > 1 else distiller
        optimizer = torch.optim.SGD(distiller.student.parameters(), lr=0.5)
        history = []
        for _ in range(2):
            for x, y in _data():
                mine = slice(rank * 16 // world_size, (rank + 1) * 16 // world_size)
                out = model(x[mine], y[mine])
                optimizer.zero_grad()
                out.loss.backward()
                optimizer.step()
            history.append(distiller.on_epoch_end().clone())
        results[f"{base}_weights"] = torch.stack(history)
        results[f"{base}_student"] = distiller.student[1].weight.detach().clone()
    controller = VulnerabilityWeights(C)  # the controller alone, fed each rank's share
    kappa = torch.arange(30, dtype=torch.float32) % 7
    target = torch.arange(30) % C
    controller.update(kappa[rank::world_size], target[rank::world_size])
    results["controller"] = controller.step().clone()
    return results


@pytest.mark.distributed
def test_two_ranks_equal_one_process_on_the_union(tmp_path):
    want = _ddp_run(0, 1)
    assert not torch.equal(want["ard_weights"][0], torch.ones(C))
    assert not torch.equal(want["rslad_weights"][0], torch.ones(C))
    results = run_ranks(_ddp_run, tmp_path)
    for got in results:
        for key, value in want.items():
            assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert torch.equal(results[0]["ard_weights"], results[1]["ard_weights"])


def test_kappa_is_counted_in_the_attacks_train_mode():
    """``model_mode="train"`` (the authors'): the attack and its kappa count on batch statistics."""
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    (x, y), *_ = _batches(copy.deepcopy(student), n_batches=1)
    reference = copy.deepcopy(student).train()
    generator = torch.Generator().manual_seed(2)
    distiller = FairARDStep(student, teacher, C, steps=4, model_mode="train", generator=generator)
    torch.manual_seed(7)  # dropout
    out = distiller.train()(x, y)
    kappa = torch.zeros(len(y))

    def count(logits):
        kappa.add_((logits.argmax(dim=1) == y).float())

    torch.manual_seed(7)
    start = uniform_start(x, EPS, seed=2)
    want = hand_pgd(reference, x, start, lambda z: F.cross_entropy(z, y, reduction="sum"), 4, EPS, STEP, count)
    assert torch.equal(out.x_adv, want)
    assert torch.equal(out.kappa, kappa)
    assert torch.equal(out.student_adv_logits, reference(want))
    assert torch.equal(out.student_clean_logits, reference(x))
    for (name, got), wanted in zip(student.named_buffers(), reference.buffers(), strict=True):
        assert torch.equal(got, wanted), name
