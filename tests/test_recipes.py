"""The training recipes against the official scripts' numbers and schedule functions, rewritten here."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections import Counter

import pytest
import torch
from torch import nn

from torch_absld import PGDConfig, methods
from torch_absld.methods import Recipe, recipe

METHODS = ("absld", "rslad", "sat", "trades", "ard", "adaad", "fair-ard", "frl", "cfa", "bat")
EPS, STEP = 8 / 255, 2 / 255
NORMAL = PGDConfig(EPS, STEP, 10, "normal", 0.001, project_start=False)  # projected after the first step
UNIFORM = PGDConfig(EPS, STEP, 10, "uniform", project_start=False)
TRAIN = PGDConfig(EPS, STEP, 10, "uniform", model_mode="train", project_start=False)  # batch-norm in train mode
TRADES = PGDConfig(0.031, 0.007, 10, "normal", 0.001, project_start=False)

# Per method: epochs, batch size, lr, momentum, nesterov, weight decay, decayed set, attack, options.
# fmt: off
OFFICIAL = {
    # zhaoshiji123/ABSLD resnet18_absld_cifar10.py:20-22 (epochs, batch, eps), :54 (SGD), :104 (step, steps),
    # :125 (alpha), :69 (temperature lr), :71-72 (max, min), :66-67 (init), :96-100 (shared storage: product),
    # :117-119 (per-class sums of the risk); absld_loss.py:40 (start)
    "absld": (300, 128, 0.1, 0.9, False, 2e-4, "all", NORMAL,
              {"alpha": 5 / 6, "lr": 0.1, "init_temperature": 1.0, "min_temperature": 0.5, "max_temperature": 5.0,
               "student_temperature": 1.0, "coupling": "product", "risk_reduction": "sum"}),
    # zibojia/RSLAD resnet18_rslad_cifar10.py:14-16, :37 (SGD), :56 (attack), :63 (5/6); rslad_loss.py:40
    "rslad": (300, 128, 0.1, 0.9, False, 2e-4, "all", NORMAL, {"alpha": 5 / 6, "init_temperature": 1.0}),
    # MadryLab/cifar10_challenge config.json:11 (80000 iterations), :15 (128), :16 (0.1), :17 (2e-4), :18 (0.9),
    # :26-29 (8, 10, 2 on 0-255, random start); model.py:145-151 (decay on DW variables only)
    # pgd_attack.py:46-48 (the start clipped into [0, 1]); train.py (the graph in train mode)
    "sat": (206, 128, 0.1, 0.9, False, 2e-4, "weights only", TRAIN.replace(project_start=True), {}),
    # yaodongyu/TRADES train_trades_cifar10.py:16 (128), :20 (76), :22 (2e-4), :24 (0.1), :26 (0.9), :30 (0.031),
    # :32 (10), :34 (0.007), :36 (beta 6.0), :153 (SGD on model.parameters()); trades.py:31 (0.001 * randn)
    "trades": (76, 128, 0.1, 0.9, False, 2e-4, "all", TRADES, {"beta": 6.0}),
    # goldblum/AdversariallyRobustDistillation main.py:15 (0.1), :18 (200), :23 (temp 30), :26 (alpha 1),
    # :49 (128), :70 (uniform start), :101-103 (8/255, 10, 2/255), :168 (SGD 0.9, 2e-4)
    "ard": (200, 128, 0.1, 0.9, False, 2e-4, "all", TRAIN, {"alpha": 1.0, "temperature": 30.0}),
    # boyellow/AdaAD main.py:41 (alpha 1), :49/:51 (defaults 16, 4), :50 (10), :58-64; README.md:58/:60 (8, 2);
    # AT_helper.py:27 (0.001 * randn)
    "adaad": (200, 128, 0.1, 0.9, False, 5e-4, "all", NORMAL, {"alpha": 1.0}),
    # NISP-official/Fair-ARD Fair-ARD.py:13 (0.1), :16 (200), :21 (30), :24 (1.0), :25 (beta 2), :47 (128),
    # :63 (uniform), :100-102, :124 (clamp 5/6, 5/2), :160 (SGD 0.9, 2e-4, nesterov=True)
    "fair-ard": (200, 128, 0.1, 0.9, True, 2e-4, "all", TRAIN,
                 {"base": "ard", "beta": 2.0, "alpha": 1.0, "temperature": 30.0, "min_weight": 5 / 6,
                  "max_weight": 5 / 2}),
    # hannxu123/fair_robust frlrmrw.py:22 (hot_start.pt), :27 (SGD 0.001, 0.9, 5e-4), :32-33, :41 (20 steps),
    # :75-76 (halve every 40), :88-97 (40, 128, 1.5, 0.07, 0.07, 0.05, 0.2, 0.5); utils_frl2.py:162, :168
    "frl": (40, 128, 0.001, 0.9, False, 5e-4, "all", NORMAL,
            {"threshold": 0.07, "beta": 1.5, "rate": 0.05, "halve_every": 40,
             "eps_rate": 0.2, "limit": 0.5, "validation_steps": 20}),
    # PKU-ML/CFA train.py:20 (200), :22 (0.1), :23 (TRADES), :25-27 (8, 10, 2), :30 (6), :36-44, :180 (0.9, 5e-4);
    # generate_validation.py:44 (128); attack.py:123 (0.001 * randn)
    "cfa": (200, 128, 0.1, 0.9, False, 5e-4, "all", NORMAL,
            {"beta": 6.0, "lambda_eps": 0.5, "lambda_beta": 0.5,
             "begin_epoch": 10, "decay": 0.88, "threshold": 0.24}),
    # silvercherry/Improving-Robust-Fairness-via-Balance-Adversarial-Training train.py:18 (128), :22 (200),
    # :24 (2e-4), :26 (0.1), :28 (0.9), :32-38 (0.031, 10, 0.007, 6.0), :106 (tau=1); stop_to_firstadv.py:26
    "bat": (200, 128, 0.1, 0.9, False, 2e-4, "all", TRADES.replace(project_start=True),
            {"beta": 6.0, "uniform_weight": 1.0, "patience": 1}),
}
# fmt: on
ATTACK_KEYS = ("eps", "step_size", "steps", "random_start", "init_std", "project_start", "model_mode")


# The official schedule functions, rewritten from the scripts: the rate each 0-based epoch trains with.
def trades_schedule(epochs: int) -> list[float]:
    """TRADES train_trades_cifar10.py:137-147, called for epoch in 1..epochs (:155-157); BAT train.py:166-186."""

    def adjust_learning_rate(epoch: int) -> float:
        lr = 0.1
        if epoch >= 75:
            lr = 0.1 * 0.1
        if epoch >= 90:
            lr = 0.1 * 0.01
        if epoch >= 100:
            lr = 0.1 * 0.001
        return lr

    return [adjust_learning_rate(epoch) for epoch in range(1, epochs + 1)]


def rslad_schedule() -> list[float]:
    """RSLAD resnet18_rslad_cifar10.py:47, :81-83 (and ABSLD's :83, :173-175): x0.1 after epochs 215, 260, 285."""
    lr, rates = 0.1, []
    for epoch in range(1, 301):
        rates.append(lr)
        if epoch in [215, 260, 285]:
            lr *= 0.1
    return rates


def ard_schedule() -> list[float]:
    """ARD main.py:32-36, :167-170 (Fair-ARD.py:30-34, :159-164): the caller's ``lr`` never changes."""
    group = {"lr": 0.1}
    lr, rates = 0.1, []
    for epoch in range(200):
        if epoch in [100, 150]:
            group["lr"] = lr * 0.1
        rates.append(group["lr"])
    return rates


def adaad_schedule() -> list[float]:
    """AdaAD main.py:113-128 (piecewise, 200 epochs), set at the start of each epoch (:293-294, :517)."""
    return [0.1 if epoch < 100 else 0.1 / 10 if epoch < 150 else 0.1 / 100 for epoch in range(200)]


def cfa_schedule() -> list[float]:
    """CFA train.py:121-127 with 200 epochs (:20, :149, :185-191)."""
    return [0.1 if t / 200 < 0.5 else 0.1 / 10.0 if t / 200 < 0.75 else 0.1 / 100.0 for t in range(200)]


def frl_schedule() -> list[float]:
    """FRL frlrmrw.py:27-28, :61, :80: torch's MultiStepLR([40, 80]) stepped with step(now_epoch) after each epoch."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.001, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[40, 80], gamma=0.1)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for now_epoch in range(1, 41):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step(now_epoch)
    return rates


def madry_rate(step: int) -> float:
    """tf.train.piecewise_constant(global_step, [40000, 60000], [0.1, 0.01, 0.001]) (train.py:44-50, config.json:16)."""
    return 0.1 if step <= 40000 else 0.01 if step <= 60000 else 0.001


def sat_schedule() -> list[float]:
    """Madry: 80,000 iterations (config.json:11) of 128; a pass drops the last partial batch (cifar10_input.py:134-138).

    Each epoch's rate is that of its first iteration; the test checks it is also that of most of its iterations.
    """
    per_epoch = 50000 // 128
    epochs = [range(start, min(start + per_epoch, 80000)) for start in range(0, 80000, per_epoch)]
    rates = []
    for steps in epochs:
        first = madry_rate(steps[0])
        assert Counter(madry_rate(s) for s in steps).most_common(1)[0][0] == first
        rates.append(first)
    return rates


SCHEDULES = {
    "absld": rslad_schedule,
    "rslad": rslad_schedule,
    "sat": sat_schedule,
    "trades": lambda: trades_schedule(76),
    "ard": ard_schedule,
    "adaad": adaad_schedule,
    "fair-ard": ard_schedule,
    "frl": frl_schedule,
    "cfa": cfa_schedule,
    "bat": lambda: trades_schedule(200),
}


@pytest.mark.parametrize("name", METHODS)
def test_official_values_are_the_scripts(name: str) -> None:
    r = recipe(name)
    epochs, batch_size, lr, momentum, nesterov, weight_decay, decay_on, attack, options = OFFICIAL[name]
    assert (r.method, r.source) == (name, "official")
    assert (r.epochs, r.batch_size, r.lr, r.momentum, r.nesterov) == (epochs, batch_size, lr, momentum, nesterov)
    assert (r.weight_decay, r.weight_decay_on) == (weight_decay, decay_on)
    assert r.attack == attack
    assert dict(r.options) == options | {key: getattr(attack, key) for key in ATTACK_KEYS}


@pytest.mark.parametrize("name", METHODS)
def test_lr_at_follows_the_official_schedule_epoch_by_epoch(name: str) -> None:
    r = recipe(name)
    expected = SCHEDULES[name]()
    assert len(expected) == r.epochs
    assert [r.lr_at(epoch) for epoch in range(r.epochs)] == pytest.approx(expected, rel=1e-12)


def test_the_schedule_quirks() -> None:
    assert [recipe("trades").lr_at(e) for e in (73, 74, 75)] == [0.1, 0.01, 0.01]
    assert [recipe("ard").lr_at(e) for e in (99, 100, 150, 199)] == [0.1, 0.01, 0.01, 0.01]
    assert [recipe("rslad").lr_at(e) for e in (214, 215, 259, 260, 285, 299)] == [0.1, 0.01, 0.01, 0.001, 1e-4, 1e-4]
    assert {recipe("frl").lr_at(e) for e in range(40)} == {0.001}
    sat = recipe("sat")
    assert (sat.epochs - 1) * 390 < 80000 <= sat.epochs * 390
    assert [sat.lr_at(e) for e in (102, 103, 153, 154)] == [0.1, 0.01, 0.01, 0.001]


def test_absld_source_is_the_papers_common_setting() -> None:
    for name in METHODS:
        r = recipe(name, source="absld")
        assert (r.source, r.model, r.epochs, r.batch_size, r.lr, r.momentum) == (
            "absld",
            "ResNet-18",
            300,
            128,
            0.1,
            0.9,
        )
        assert (r.nesterov, r.weight_decay, r.weight_decay_on, r.schedule) == (
            False,
            2e-4,
            "all",
            recipe("absld").schedule,
        )
        assert (r.attack.eps, r.attack.step_size, r.attack.steps) == (EPS, STEP, 10)
        assert r.attack.random_start == recipe(name).attack.random_start
        assert [r.lr_at(e) for e in range(300)] == pytest.approx(rslad_schedule(), rel=1e-12)
    assert recipe("absld", "absld").options["coupling"] == "separate"  # Eq. 12
    assert recipe("frl", "absld").options["threshold"] == 0.05  # Sec. 5.1: "under the threshold of 0.05"
    assert recipe("sat", "absld").options == recipe("sat").options  # the paper's attack is SAT's
    assert recipe("trades", "absld").options["beta"] == recipe("trades").options["beta"]
    for name in METHODS:  # the options carry the attack
        r = recipe(name, "absld")
        assert {key: r.options[key] for key in ATTACK_KEYS} == {key: getattr(r.attack, key) for key in ATTACK_KEYS}


def _groups(opt: torch.optim.Optimizer) -> list[tuple[set[int], float]]:
    return [({id(p) for p in group["params"]}, group["weight_decay"]) for group in opt.param_groups]


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("source", ["official", "absld"])
def test_optimizer_decays_the_official_parameter_set(name: str, source: str) -> None:
    r = recipe(name, source)  # type: ignore[arg-type]
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 10))
    conv, bn, linear = model[0], model[1], model[3]
    opt = r.optimizer(model)
    assert isinstance(opt, torch.optim.SGD)
    for group in opt.param_groups:
        assert (group["lr"], group["momentum"], group["nesterov"], group["dampening"]) == (
            r.lr,
            r.momentum,
            r.nesterov,
            0,
        )
    everything = {id(p) for p in model.parameters()}
    if r.weight_decay_on == "all":
        assert _groups(opt) == [(everything, r.weight_decay)]
    else:  # Madry's model.py:145-151: the l2 loss of the conv and fully connected kernels only
        kernels = {id(conv.weight), id(linear.weight)}
        assert _groups(opt) == [(kernels, r.weight_decay), (everything - kernels, 0.0)]
        assert {id(bn.weight), id(bn.bias), id(conv.bias), id(linear.bias)} == everything - kernels
    assert _groups(r.optimizer(list(model.parameters()))) == _groups(opt)


def test_a_decayed_step_is_tensorflows_l2_loss_step() -> None:
    """Madry's total loss adds weight_decay * sum(w**2) / 2 over the kernels: SGD's decay on the kernels alone."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    twin = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    twin.load_state_dict(model.state_dict())
    x = torch.randn(8, 3)
    r = recipe("sat")
    opt = r.optimizer(model)
    plain = torch.optim.SGD(twin.parameters(), lr=r.lr, momentum=r.momentum)
    for _ in range(3):
        opt.zero_grad()
        plain.zero_grad()
        model(x).square().mean().backward()
        l2 = sum(p.square().sum() / 2 for p in twin.parameters() if p.ndim >= 2)
        (twin(x).square().mean() + r.weight_decay * l2).backward()
        opt.step()
        plain.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("source", ["official", "absld"])
def test_scheduler_stepped_per_epoch_reproduces_lr_at(name: str, source: str) -> None:
    r = recipe(name, source)  # type: ignore[arg-type]
    opt = r.optimizer(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    scheduler = r.scheduler(opt)
    for epoch in range(r.epochs):
        assert [group["lr"] for group in opt.param_groups] == pytest.approx(
            [r.lr_at(epoch)] * len(opt.param_groups), rel=1e-12
        )
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(r.lr_at(r.epochs - 1), rel=1e-12)


SOURCE = re.compile(r"^([\w.-]+/[\w.-]+/[\w./-]+|absld-paper\.md):\d+(-\d+)?(, \d+(-\d+)?)*$")


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("source", ["official", "absld"])
def test_every_value_has_a_source(name: str, source: str) -> None:
    r = recipe(name, source)  # type: ignore[arg-type]
    unsourced = {"method", "source", "attack", "options", "notes", "sources"}
    unsourced |= {"teacher"} if r.teacher is None else set()
    fields = {f.name for f in dataclasses.fields(Recipe)} | {f"attack.{key}" for key in ATTACK_KEYS[:5]}
    wanted = fields - unsourced | {f"options.{k}" for k in r.options if k not in ATTACK_KEYS}
    assert wanted - {"attack.init_std"} <= set(r.sources) <= wanted
    assert all(SOURCE.match(where) for where in r.sources.values()), dict(r.sources)
    if source == "official" and name != "absld":
        assert not any(where.startswith("absld-paper.md") for where in r.sources.values())


def test_recipes_are_frozen() -> None:
    r = recipe("rslad")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.epochs = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.options["alpha"] = 1.0  # type: ignore[index]
    assert hash(r) == hash(recipe("rslad"))
    assert r == recipe("rslad")


def test_bad_name_source_or_epoch_raise_clearly() -> None:
    with pytest.raises(ValueError, match=r"`name`.*'absld', 'rslad'.*'bat', but got 'madry'"):
        recipe("madry")
    with pytest.raises(ValueError, match=r"`source`.*'official', 'absld', but got 'paper'"):
        recipe("trades", source="paper")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`epoch` in \[0, 76\) for 'trades', but got 76"):
        recipe("trades").lr_at(76)
    with pytest.raises(ValueError, match=r"`epoch`.*but got -1"):
        recipe("trades").lr_at(-1)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("source", ["official", "absld"])
def test_options_build_the_official_step_with_create(name: str, source: str) -> None:
    r = recipe(name, source)  # type: ignore[arg-type]
    options = dict(r.options)
    if methods.get(name).needs_validation:
        options["validation"] = [(torch.rand(2, 4), torch.tensor([0, 1]))]
    step = methods.create(name, nn.Linear(4, 10), num_classes=10, teacher=nn.Linear(4, 10), **options)
    assert step.attack.config.replace(validate_args=True) == r.attack.replace(
        student_temperature=step.attack.config.student_temperature
    )
