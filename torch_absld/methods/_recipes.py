"""Training recipes: the values of each method's official training script, and the ABSLD paper's setting.

Every value carries its source (``"owner/repo/path:line"``); ``docs/methods/recipes.md`` lists
them, with each difference between a script and the ABSLD paper's common setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from torch import Tensor, nn
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["Attack", "Recipe", "recipe"]

Source = Literal["official", "absld"]
_SOURCES: tuple[Source, ...] = ("official", "absld")


@dataclass(frozen=True)
class Attack:
    r"""The training attack: $L_\infty$ PGD on inputs in $[0, 1]$.

    Attributes:
        eps: radius (a base radius where the method scales it per class).
        step_size: step of each iteration.
        steps: number of iterations.
        random_start: ``"normal"`` ($x + \sigma \mathcal{N}(0, 1)$) or ``"uniform"`` ($x + U(-\epsilon, \epsilon)$).
        init_std: $\sigma$ of the normal start; ``None`` for a uniform start.
    """

    eps: float
    step_size: float
    steps: int
    random_start: Literal["normal", "uniform"]
    init_std: float | None = None


@dataclass(frozen=True)
class Recipe:
    """A method's training recipe: optimizer, schedule, attack and hyperparameters, with sources.

    Attributes:
        method: the method's name, as in :func:`torch_absld.methods.available`.
        source: ``"official"`` (the authors' script) or ``"absld"`` (the ABSLD paper's setting).
        model, teacher: the networks the recipe trains and distils from (``teacher`` is ``None``
            for adversarial training).
        epochs, batch_size, lr, momentum, nesterov, weight_decay: the SGD run.
        weight_decay_on: ``"all"`` parameters, or ``"weights only"`` (tensors of 2 or more
            dimensions: convolution kernels and linear weights, not biases nor normalisation).
        schedule: ``(first 0-based epoch, multiplier of lr)`` pairs, in order; read by :meth:`lr_at`.
        attack: the training attack.
        options: the method's hyperparameters, named as the method's options where one exists.
        notes: the script's quirks, in short.
        sources: field (``"attack.eps"``, ``"options.beta"``, ...) -> ``"owner/repo/path:line"``.
    """

    method: str
    source: Source
    model: str
    teacher: str | None
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    weight_decay_on: Literal["all", "weights only"]
    schedule: tuple[tuple[int, float], ...]
    attack: Attack
    options: Mapping[str, object] = field(hash=False)
    notes: tuple[str, ...]
    sources: Mapping[str, str] = field(hash=False)

    def _factor(self, epoch: int) -> float:
        return next(factor for start, factor in reversed(self.schedule) if epoch >= start)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of 0-based ``epoch`` as the script runs it, quirks included.

        Example:
            >>> recipe("trades").lr_at(73), recipe("trades").lr_at(74)
            (0.1, 0.01)
        """
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"Expected `epoch` in [0, {self.epochs}) for {self.method!r}, but got {epoch!r}.")
        return round(self.lr * self._factor(epoch), 12)  # 0.01, not 0.1 * 0.1 = 0.010000000000000002

    def optimizer(self, params_or_model: nn.Module | Iterable[Tensor]) -> SGD:
        """``torch.optim.SGD`` with the recipe's values, decaying the parameters the script decays.

        With ``weight_decay_on="weights only"`` the tensors of fewer than 2 dimensions (biases,
        normalisation) form a second group with ``weight_decay=0``.
        """
        items = params_or_model.parameters() if isinstance(params_or_model, nn.Module) else params_or_model
        params = list(items)
        if self.weight_decay_on == "all":
            groups: list[dict[str, Any]] = [{"params": params, "weight_decay": self.weight_decay}]
        else:
            groups = [
                {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
                {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
            ]
        kept = [g for g in groups if g["params"]] or groups[:1]
        return SGD(kept, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov)

    def scheduler(self, optimizer: Optimizer) -> LambdaLR:
        """A ``LambdaLR`` following :meth:`lr_at` when stepped once per epoch (its factor times each group's lr).

        After the last epoch it keeps the last epoch's factor.
        """
        last = self.epochs - 1
        return LambdaLR(optimizer, lambda epoch: self._factor(min(epoch, last)))


def _at(prefix: str, spec: str) -> dict[str, str]:
    """``"a,b=12 c=3-5+9"`` -> ``{"a": "prefix:12", "b": "prefix:12", "c": "prefix:3-5, 9"}``."""
    pairs = (token.split("=") for token in spec.split())
    return {key: f"{prefix}:{line.replace('+', ', ')}" for keys, line in pairs for key in keys.split(",")}


_SGD = "momentum,nesterov,weight_decay,weight_decay_on"
_WRN = "WideResNet-34-10 (TRADES)"
_NORMAL = Attack(8 / 255, 2 / 255, 10, "normal", 0.001)
_UNIFORM = Attack(8 / 255, 2 / 255, 10, "uniform")
_TRADES_ATTACK = Attack(0.031, 0.007, 10, "normal", 0.001)
_ABSLD_SCHEDULE = ((0, 1.0), (215, 0.1), (260, 0.01), (285, 0.001))
_PAPER = "absld-paper.md"  # the ABSLD paper, Sec. 5.1: line 200 networks, 202 baselines, 204 ABSLD's setting
_MADRY, _ADAAD, _FRL = "MadryLab/cifar10_challenge", "boyellow/AdaAD", "hannxu123/fair_robust"
_BAT = "silvercherry/Improving-Robust-Fairness-via-Balance-Adversarial-Training"


# fmt: off
def _recipe(method: str, run: tuple[Any, ...], attack: Attack, options: dict[str, Any], sources: dict[str, str],
            *notes: str) -> Recipe:
    """``run``: the fields from ``model`` to ``schedule``."""
    model, teacher, epochs, batch_size, lr, momentum, nesterov, weight_decay, decay_on, schedule = run
    return Recipe(method, "official", model, teacher, epochs, batch_size, lr, momentum, nesterov, weight_decay,
                  decay_on, schedule, attack, MappingProxyType(options), notes, MappingProxyType(sources))


_OFFICIAL: dict[str, Recipe] = {r.method: r for r in (
    _recipe("absld", ("ResNet-18", _WRN, 300, 128, 0.1, 0.9, False, 2e-4, "all", _ABSLD_SCHEDULE), _NORMAL,
        {"alpha": 5 / 6, "lr": 0.1, "lr_milestones": (215, 260, 285), "init_temperature": 1.0,
         "min_temperature": 0.5, "max_temperature": 5.0, "student_temperature": 1.0, "coupling": "product"},
        _at("zhaoshiji123/ABSLD/resnet18_absld_cifar10.py",
            f"epochs=20 batch_size=21 attack.eps=22 model=51 lr,{_SGD}=54 teacher=61-62 schedule=83+173-175 "
            "attack.step_size,attack.steps=104 options.alpha=125 options.lr=69 options.lr_milestones=173-176 "
            "options.init_temperature=66-67 options.min_temperature=72 options.max_temperature=71 "
            "options.coupling=96-100")
        | _at("zhaoshiji123/ABSLD/absld_loss.py", "attack.random_start,attack.init_std=40")
        | _at(_PAPER, "options.student_temperature=204"),
        "lr and the temperatures' lr x0.1 after 1-based epochs 215, 260, 285",
        "the two temperature vectors share storage: both terms use tau_adv[y] * tau_clean[y]"),
    _recipe("rslad", ("ResNet-18", _WRN, 300, 128, 0.1, 0.9, False, 2e-4, "all", _ABSLD_SCHEDULE), _NORMAL,
        {"alpha": 5 / 6, "temperature": 1.0},
        _at("zibojia/RSLAD/resnet18_rslad_cifar10.py",
            f"epochs=14 batch_size=15 attack.eps=16 model=33 lr,{_SGD}=37 teacher=41-42 schedule=47+81-83 "
            "attack.step_size,attack.steps=56 options.alpha=63 options.temperature=59-60")
        | _at("zibojia/RSLAD/rslad_loss.py", "attack.random_start,attack.init_std=40"),
        "lr x0.1 after 1-based epochs 215, 260, 285: 0-based epoch 215 is the first at 0.01"),
    _recipe("sat", ("WideResNet (5 units per stage, x10)", None, 206, 128, 0.1, 0.9, False, 2e-4, "weights only",
                    ((0, 1.0), (103, 0.1), (154, 0.01))), _UNIFORM,
        {"iterations": 80000, "iterations_per_epoch": 390},
        _at(f"{_MADRY}/config.json", "epochs,options.iterations=11 batch_size=15 lr,schedule=16 weight_decay=17 "
            "momentum=18 attack.eps=26 attack.steps=27 attack.step_size=28")
        | _at(f"{_MADRY}/train.py", "nesterov=52") | _at(f"{_MADRY}/pgd_attack.py", "attack.random_start=46-48")
        | _at(f"{_MADRY}/cifar10_input.py", "options.iterations_per_epoch=134-143")
        | _at(f"{_MADRY}/model.py", "weight_decay_on=145-151 model=50-75"),
        "80,000 iterations, 390 an epoch (partial batch dropped): 206 epochs, the last one 50 iterations",
        "lr changes at iterations 40,000 and 60,000, inside epochs 102 and 153: an epoch gets its first rate",
        "eps 8 and step 2 on the 0-255 scale; weight decay on conv and linear kernels only"),
    _recipe("trades", ("WideResNet-34-10", None, 76, 128, 0.1, 0.9, False, 2e-4, "all", ((0, 1.0), (74, 0.1))),
        _TRADES_ATTACK, {"beta": 6.0},
        _at("yaodongyu/TRADES/train_trades_cifar10.py",
            "batch_size=16 epochs=20 weight_decay=22 lr=24 momentum=26 nesterov,weight_decay_on=153 "
            "schedule=137-147+155-157 attack.eps=30 attack.steps=32 attack.step_size=34 options.beta=36 model=152")
        | _at("yaodongyu/TRADES/trades.py", "attack.random_start,attack.init_std=31"),
        "1-based epochs, lr x0.1 from epoch 75 of 76: the last two epochs run at 0.01"),
    _recipe("ard", ("MobileNetV2", _WRN, 200, 128, 0.1, 0.9, False, 2e-4, "all", ((0, 1.0), (100, 0.1))), _UNIFORM,
        {"alpha": 1.0, "temperature": 30.0},
        _at("goldblum/AdversariallyRobustDistillation/main.py",
            f"lr=15 schedule=16-17+32-36+167-170 epochs=18 model=20 options.temperature=23 options.alpha=26 "
            f"batch_size=49 attack.random_start=70 attack.eps=101 attack.steps=102 attack.step_size=103 {_SGD}=168")
        | _at("goldblum/AdversariallyRobustDistillation/README.md", "teacher=18"),
        "adjust_learning_rate scales the initial lr: 0.01 from epoch 100 on (epoch 150 sets 0.01 again)"),
    _recipe("adaad", ("ResNet-18", "WideResNet-34-20 (Chen2021LTD)", 200, 128, 0.1, 0.9, False, 5e-4, "all",
                      ((0, 1.0), (100, 0.1), (150, 0.01))), _NORMAL,
        {"alpha": 1.0, "large_eps": 16 / 255, "large_step_size": 4 / 255},
        _at(f"{_ADAAD}/main.py",
            "model=34 options.alpha=41 options.large_eps=49 attack.steps=50 options.large_step_size=51 epochs=58 "
            "batch_size=59 lr=61 momentum=63 weight_decay=64 schedule=113-128+293-294+517 "
            "nesterov,weight_decay_on=247-248")
        | _at(f"{_ADAAD}/README.md", "teacher=57 attack.eps=58 attack.step_size=60")
        | _at(f"{_ADAAD}/AT_helper.py", "attack.random_start,attack.init_std=27"),
        "README's AdaAD command: eps 8/255, step 2/255; the script's defaults 16/255, 4/255: its larger radius"),
    _recipe("fair-ard", ("ResNet-18", "WideResNet (path on the command line)", 200, 128, 0.1, 0.9, True, 2e-4, "all",
                         ((0, 1.0), (100, 0.1))), _UNIFORM,
        {"base": "ard", "beta": 2.0, "alpha": 1.0, "temperature": 30.0, "min_weight": 5 / 6, "max_weight": 5 / 2},
        _at("NISP-official/Fair-ARD/Fair-ARD.py",
            "lr=13 schedule=14-15+30-34+159-164 epochs=16 model=18 teacher=19 options.temperature=21 "
            "options.alpha=24 options.beta=25 batch_size=47 attack.random_start=63 attack.eps=100 "
            f"attack.steps=101 attack.step_size=102 options.min_weight,options.max_weight=124 options.base=148 "
            f"{_SGD}=160"),
        "ARD's adjust_learning_rate: 0.01 from epoch 100 on; Nesterov momentum, unlike ARD"),
    _recipe("frl", ("PreAct ResNet-18, from a trained robust model", None, 40, 128, 0.001, 0.9, False, 5e-4, "all",
                    ((0, 1.0),)), _NORMAL,
        {"init": "hot_start.pt", "threshold": 0.07, "beta": 1.5, "rate": 0.05, "halve_every": 40, "eps_rate": 0.2,
         "limit": 0.5, "validation_steps": 20},
        _at(f"{_FRL}/frlrmrw.py",
            f"options.init=22 lr,{_SGD}=27 schedule=28+61+80 attack.eps=32 attack.steps=33 "
            "options.validation_steps=41 options.halve_every=75-76 epochs=88 batch_size=89 options.beta=91 "
            "model=22+92 options.threshold=93-94 options.rate=95 options.eps_rate=96 options.limit=97")
        | _at(f"{_FRL}/utils_frl2.py", "attack.step_size=161-162 attack.random_start,attack.init_std=168"),
        "fine-tunes hot_start.pt, a trained robust model; MultiStepLR([40, 80]) never fires in 40 epochs",
        "radius x clamp(exp(2 lambda), 0.98, 3) per class, step = largest radius / 4; rate halves at epoch 40"),
    _recipe("cfa", ("PreAct ResNet-18", None, 200, 128, 0.1, 0.9, False, 5e-4, "all",
                    ((0, 1.0), (100, 0.1), (150, 0.01))), _NORMAL,
        {"mode": "TRADES", "ccm": True, "ccr": True, "beta": 6.0, "lambda_eps": 0.5, "lambda_beta": 0.5,
         "begin_epoch": 10, "decay": 0.88, "threshold": 0.24},
        _at("PKU-ML/CFA/train.py",
            "model=21 lr=22 options.mode=23 attack.eps=25 attack.steps=26 attack.step_size=27 options.beta=30 "
            "options.ccm=36 options.ccr=37 options.lambda_eps=38 options.lambda_beta=39 options.begin_epoch=41 "
            f"options.decay=43 options.threshold=44 schedule=121-127+185-191 epochs=20+149 {_SGD}=180")
        | _at("PKU-ML/CFA/generate_validation.py", "batch_size=44")
        | _at("PKU-ML/CFA/attack.py", "attack.random_start,attack.init_std=123"),
        "TRADES+CFA: --mode TRADES --ccm --ccr; the loader (128, 2% held out) is generate_validation.py's"),
    _recipe("bat", ("ResNet-18", None, 200, 128, 0.1, 0.9, False, 2e-4, "all",
                    ((0, 1.0), (74, 0.1), (89, 0.01), (99, 0.001))), _TRADES_ATTACK,
        {"beta": 6.0, "uniform_weight": 1.0, "patience": 1},
        _at(f"{_BAT}/train.py",
            "batch_size=18 epochs=22 weight_decay=24 lr=26 momentum=28 attack.eps=32 attack.steps=34 "
            "attack.step_size=36 options.beta=38 options.uniform_weight=85+116 options.patience=106 "
            "schedule=166-176+184-186 model=179 nesterov,weight_decay_on=182")
        | _at(f"{_BAT}/train_mode/stop_to_firstadv.py", "attack.random_start,attack.init_std=26"),
        "TRADES' adjust_learning_rate over 200 1-based epochs: 0.01 from 75, 0.001 from 90, 0.0001 from 100 on"),
)}

# What the ABSLD paper sets differently from a script, with the paper's line: Eq. 12 (161), Sec. 5.1 (202).
_PAPER_OPTIONS: dict[str, dict[str, tuple[object, int]]] = {
    "absld": {"coupling": ("separate", 161)},
    "frl": {"threshold": (0.05, 202)},
    "sat": {"iterations": (None, 204), "iterations_per_epoch": (None, 204)},
}
_PAPER_RUN = _at(_PAPER, f"epochs,batch_size,lr,schedule,attack.eps,attack.step_size,attack.steps,{_SGD}=204 model=200")


def _absld(official: Recipe) -> Recipe:
    """The ABSLD paper's common setting with ``official``'s method options (and the paper's own choices)."""
    changed = _PAPER_OPTIONS.get(official.method, {})
    options = {k: v for k, v in official.options.items() if k not in changed}
    options |= {k: v for k, (v, _) in changed.items() if v is not None}
    sources = {k: v for k, v in official.sources.items() if not k.startswith("options.") or k[8:] in options}
    sources |= _PAPER_RUN | {f"options.{k}": f"{_PAPER}:{line}" for k, (v, line) in changed.items() if v is not None}
    if official.teacher is not None:
        sources["teacher"] = f"{_PAPER}:200"
    notes = () if official.method == "absld" else ("the paper runs baselines in their own setting (line 202)",)
    return replace(
        official, source="absld", model="ResNet-18", teacher=None if official.teacher is None else _WRN, epochs=300,
        batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=2e-4, weight_decay_on="all",
        schedule=_ABSLD_SCHEDULE, attack=replace(official.attack, eps=8 / 255, step_size=2 / 255, steps=10),
        options=MappingProxyType(options), notes=notes, sources=MappingProxyType(sources),
    )
# fmt: on


def recipe(name: str, source: Source = "official") -> Recipe:
    """The training recipe of method ``name``: its official script's values, or the ABSLD paper's setting.

    Args:
        name: one of ``"absld"``, ``"rslad"``, ``"sat"``, ``"trades"``, ``"ard"``, ``"adaad"``,
            ``"fair-ard"``, ``"frl"``, ``"cfa"``, ``"bat"``.
        source: ``"official"``, the authors' public script (CIFAR-10) as it runs; or ``"absld"``,
            the ABSLD paper's common setting (Sec. 5.1: ResNet-18, SGD 0.1, 300 epochs, x0.1 at
            215, 260, 285, batch 128, weight decay 2e-4, PGD-10 of 2/255 in 8/255) with the method's options.

    Example:
        >>> r = recipe("trades")
        >>> r.epochs, r.attack.eps, r.options["beta"], r.sources["epochs"]
        (76, 0.031, 6.0, 'yaodongyu/TRADES/train_trades_cifar10.py:20')
    """
    if name not in _OFFICIAL:
        accepted = ", ".join(repr(n) for n in _OFFICIAL)
        raise ValueError(f"Expected `name` to be one of {accepted}, but got {name!r}.")
    if source not in _SOURCES:
        accepted = ", ".join(repr(s) for s in _SOURCES)
        raise ValueError(f"Expected `source` to be one of {accepted}, but got {source!r}.")
    return _OFFICIAL[name] if source == "official" else _absld(_OFFICIAL[name])
