"""Training recipes: each method's official training script as it runs, and the ABSLD paper's setting (Sec. 5.1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from torch import Tensor, nn
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ..attack import PGDConfig

__all__ = ["Recipe", "recipe"]

Source = Literal["official", "absld"]
_ATTACK_KEYS = ("eps", "step_size", "steps", "random_start", "init_std", "project_start", "model_mode")


@dataclass(frozen=True)
class Recipe:
    """A method's training recipe (``docs/methods/recipes.md``): the SGD run, schedule, attack, step options.

    ``weight_decay_on``: ``"all"`` or ``"weights only"`` (tensors of 2 or more dimensions); ``schedule``:
    ``(first 0-based epoch, lr multiplier)`` pairs; ``options``: the keyword options of ``methods.create``
    that build the script's step; ``sources``: field (``"attack.eps"``) -> ``"owner/repo/path:line"``.
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
    attack: PGDConfig
    options: Mapping[str, Any] = field(hash=False)
    notes: tuple[str, ...]
    sources: Mapping[str, str] = field(hash=False)

    def _factor(self, epoch: int) -> float:  # the multiplier of the last schedule entry at or before epoch
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
        """``SGD`` with the recipe's values; ``"weights only"``: tensors of < 2 dimensions get ``weight_decay=0``."""
        params = list(params_or_model.parameters() if isinstance(params_or_model, nn.Module) else params_or_model)
        groups: list[dict[str, Any]] = [{"params": params, "weight_decay": self.weight_decay}]
        if self.weight_decay_on == "weights only":
            groups = [
                {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
                {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
            ]
        kept = [g for g in groups if g["params"]] or groups[:1]
        return SGD(kept, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov)

    def scheduler(self, optimizer: Optimizer) -> LambdaLR:
        """A ``LambdaLR`` giving :meth:`lr_at` when stepped once per epoch (the last epoch's factor after the run)."""
        return LambdaLR(optimizer, lambda epoch: self._factor(min(epoch, self.epochs - 1)))


def _at(spec: str) -> dict[str, str]:
    """``"r/a.py x,y=12 z=3-5+9 r/b.py w=4"`` -> ``{"x": "r/a.py:12", "y": ..., "z": "r/a.py:3-5, 9", "w": ...}``."""
    sources: dict[str, str] = {}
    path = ""
    for token in spec.split():
        keys, _, line = token.rpartition("=")
        path = path if keys else line
        sources |= {key: f"{path}:{line.replace('+', ', ')}" for key in keys.split(",") if keys}
    return sources


def _recipe(
    method: str, run: tuple[Any, ...], attack: PGDConfig, options: dict[str, Any], sources: dict[str, str], *notes: str
) -> Recipe:
    """``run``: the fields ``model`` to ``schedule``; ``options``: the method's, the attack's are added."""
    options |= {key: getattr(attack, key) for key in _ATTACK_KEYS}
    return Recipe(method, "official", *run, attack, MappingProxyType(options), notes, MappingProxyType(sources))  # type: ignore[call-arg]


_SGD = "momentum,nesterov,weight_decay,weight_decay_on"
_WRN = "WideResNet-34-10 (TRADES)"
_NORMAL = PGDConfig(project_start=False)  # 10 steps of 2/255 in 8/255 from x + 0.001 N(0, 1), projected after a step
_UNIFORM = replace(_NORMAL, random_start="uniform")
_TRAIN = replace(_UNIFORM, model_mode="train")  # SAT, ARD, Fair-ARD attack in train mode
_TRADES = replace(_NORMAL, eps=0.031, step_size=0.007)
_ABSLD_SCHEDULE = ((0, 1.0), (215, 0.1), (260, 0.01), (285, 0.001))
_PAPER = "absld-paper.md"  # the ABSLD paper, Sec. 5.1: line 200 networks, 202 baselines, 204 ABSLD's setting
_MADRY, _AD, _FRL = "MadryLab/cifar10_challenge", "boyellow/AdaAD", "hannxu123/fair_robust"
_BAT = "silvercherry/Improving-Robust-Fairness-via-Balance-Adversarial-Training"

# fmt: off
_OFFICIAL: dict[str, Recipe] = {r.method: r for r in (
    _recipe("absld", ("ResNet-18", _WRN, 300, 128, 0.1, 0.9, False, 2e-4, "all", _ABSLD_SCHEDULE), _NORMAL,
        {"alpha": 5 / 6, "lr": 0.1, "init_temperature": 1.0, "min_temperature": 0.5, "max_temperature": 5.0,
         "student_temperature": 1.0, "coupling": "product", "risk_reduction": "sum"},
        _at(f"zhaoshiji123/ABSLD/resnet18_absld_cifar10.py epochs=20 batch_size=21 attack.eps=22 model=51 lr,{_SGD}=54 "
            "teacher=61-62 schedule=83+173-175 attack.step_size,attack.steps=104 options.alpha=125 options.lr=69 "
            "options.risk_reduction=117-119 "
            "options.init_temperature=66-67 options.min_temperature=72 options.max_temperature=71 "
            "options.coupling=96-100 zhaoshiji123/ABSLD/absld_loss.py attack.random_start,attack.init_std=40 "
            f"{_PAPER} options.student_temperature=204"),
        "lr and the temperatures' lr x0.1 after 1-based epochs 215, 260, 285 (follow_optimizer_lr)",
        "the two temperature vectors share storage: both terms use tau_adv[y] * tau_clean[y]"),
    _recipe("rslad", ("ResNet-18", _WRN, 300, 128, 0.1, 0.9, False, 2e-4, "all", _ABSLD_SCHEDULE), _NORMAL,
        {"alpha": 5 / 6, "init_temperature": 1.0},
        _at(f"zibojia/RSLAD/resnet18_rslad_cifar10.py epochs=14 batch_size=15 attack.eps=16 model=33 lr,{_SGD}=37 "
            "teacher=41-42 schedule=47+81-83 attack.step_size,attack.steps=56 options.alpha=63 "
            "options.init_temperature=59-60 zibojia/RSLAD/rslad_loss.py attack.random_start,attack.init_std=40"),
        "lr x0.1 after 1-based epochs 215, 260, 285: 0-based epoch 215 is the first at 0.01"),
    _recipe("sat", ("WideResNet (5 units per stage, x10)", None, 206, 128, 0.1, 0.9, False, 2e-4, "weights only",
                    ((0, 1.0), (103, 0.1), (154, 0.01))), replace(_TRAIN, project_start=True), {},
        _at(f"{_MADRY}/config.json epochs=11 batch_size=15 lr,schedule=16 weight_decay=17 momentum=18 attack.eps=26 "
            f"attack.steps=27 attack.step_size=28 {_MADRY}/train.py nesterov=52 {_MADRY}/pgd_attack.py "
            f"attack.random_start=46-48 {_MADRY}/model.py weight_decay_on=145-151 model=50-75"),
        "80,000 iterations, 390 an epoch (cifar10_input.py:134-143): 206 epochs, the last one 50 iterations",
        "lr changes at iterations 40,000 and 60,000, inside epochs 102 and 153: an epoch gets its first rate",
        "eps 8 and step 2 on the 0-255 scale; weight decay on conv and linear kernels only"),
    _recipe("trades", ("WideResNet-34-10", None, 76, 128, 0.1, 0.9, False, 2e-4, "all", ((0, 1.0), (74, 0.1))),
        _TRADES, {"beta": 6.0},
        _at("yaodongyu/TRADES/train_trades_cifar10.py batch_size=16 epochs=20 weight_decay=22 lr=24 momentum=26 "
            "nesterov,weight_decay_on=153 schedule=137-147+155-157 attack.eps=30 attack.steps=32 attack.step_size=34 "
            "options.beta=36 model=152 yaodongyu/TRADES/trades.py attack.random_start,attack.init_std=31"),
        "1-based epochs, lr x0.1 from epoch 75 of 76: the last two epochs run at 0.01"),
    _recipe("ard", ("MobileNetV2", _WRN, 200, 128, 0.1, 0.9, False, 2e-4, "all", ((0, 1.0), (100, 0.1))), _TRAIN,
        {"alpha": 1.0, "temperature": 30.0},
        _at("goldblum/AdversariallyRobustDistillation/main.py lr=15 schedule=16-17+32-36+167-170 epochs=18 model=20 "
            "options.temperature=23 options.alpha=26 batch_size=49 attack.random_start=70 attack.eps=101 "
            f"attack.steps=102 attack.step_size=103 {_SGD}=168 goldblum/AdversariallyRobustDistillation/README.md "
            "teacher=18"),
        "adjust_learning_rate scales the initial lr: 0.01 from epoch 100 on (epoch 150 sets 0.01 again)"),
    _recipe("adaad", ("ResNet-18", "WideResNet-34-20 (Chen2021LTD)", 200, 128, 0.1, 0.9, False, 5e-4, "all",
                      ((0, 1.0), (100, 0.1), (150, 0.01))), _NORMAL, {"alpha": 1.0},
        _at(f"{_AD}/main.py model=34 options.alpha=41 attack.steps=50 epochs=58 batch_size=59 lr=61 momentum=63 "
            f"weight_decay=64 schedule=113-128+293-294+517 nesterov,weight_decay_on=247-248 {_AD}/README.md "
            f"teacher=57 attack.eps=58 attack.step_size=60 {_AD}/AT_helper.py attack.random_start,attack.init_std=27"),
        "README's AdaAD command: eps 8/255, step 2/255; main.py:49, 51 default to 16/255, 4/255"),
    _recipe("fair-ard", ("ResNet-18", "WideResNet (path on the command line)", 200, 128, 0.1, 0.9, True, 2e-4, "all",
                         ((0, 1.0), (100, 0.1))), _TRAIN,
        {"base": "ard", "beta": 2.0, "alpha": 1.0, "temperature": 30.0, "min_weight": 5 / 6, "max_weight": 5 / 2},
        _at("NISP-official/Fair-ARD/Fair-ARD.py lr=13 schedule=14-15+30-34+159-164 epochs=16 model=18 teacher=19 "
            "options.temperature=21 options.alpha=24 options.beta=25 batch_size=47 attack.random_start=63 "
            "attack.eps=100 attack.steps=101 attack.step_size=102 options.min_weight,options.max_weight=124 "
            f"options.base=148 {_SGD}=160"),
        "ARD's adjust_learning_rate: 0.01 from epoch 100 on; Nesterov momentum, unlike ARD"),
    _recipe("frl", ("PreAct ResNet-18, from a trained robust model", None, 40, 128, 0.001, 0.9, False, 5e-4, "all",
                    ((0, 1.0),)), _NORMAL,
        {"threshold": 0.07, "beta": 1.5, "rate": 0.05, "halve_every": 40, "eps_rate": 0.2, "limit": 0.5,
         "validation_steps": 20},
        _at(f"{_FRL}/frlrmrw.py lr,{_SGD}=27 schedule=28+61+80 attack.eps=32 attack.steps=33 "
            "options.validation_steps=41 options.halve_every=75-76 epochs=88 batch_size=89 options.beta=91 "
            "model=22+92 options.threshold=93-94 options.rate=95 options.eps_rate=96 options.limit=97 "
            f"{_FRL}/utils_frl2.py attack.step_size=161-162 attack.random_start,attack.init_std=168"),
        "fine-tunes hot_start.pt (frlrmrw.py:22), a trained robust model; MultiStepLR([40, 80]) never fires",
        "radius x clamp(exp(2 lambda), 0.98, 3) per class, step = largest radius / 4; rate halves at epoch 40"),
    _recipe("cfa", ("PreAct ResNet-18", None, 200, 128, 0.1, 0.9, False, 5e-4, "all",
                    ((0, 1.0), (100, 0.1), (150, 0.01))), _NORMAL,
        {"beta": 6.0, "lambda_eps": 0.5, "lambda_beta": 0.5, "begin_epoch": 10, "decay": 0.88, "threshold": 0.24},
        _at("PKU-ML/CFA/train.py model=21 lr=22 attack.eps=25 attack.steps=26 attack.step_size=27 options.beta=30 "
            "options.lambda_eps=38 options.lambda_beta=39 options.begin_epoch=41 options.decay=43 options.threshold=44 "
            f"schedule=121-127+185-191 epochs=20+149 {_SGD}=180 PKU-ML/CFA/generate_validation.py batch_size=44 "
            "PKU-ML/CFA/attack.py attack.random_start,attack.init_std=123"),
        "TRADES+CFA: --mode TRADES --ccm --ccr; the loader (128, 2% held out) is generate_validation.py's"),
    _recipe("bat", ("ResNet-18", None, 200, 128, 0.1, 0.9, False, 2e-4, "all",
                    ((0, 1.0), (74, 0.1), (89, 0.01), (99, 0.001))), replace(_TRADES, project_start=True),
        {"beta": 6.0, "uniform_weight": 1.0, "patience": 1},
        _at(f"{_BAT}/train.py batch_size=18 epochs=22 weight_decay=24 lr=26 momentum=28 attack.eps=32 attack.steps=34 "
            "attack.step_size=36 options.beta=38 options.uniform_weight=85+116 options.patience=106 "
            "schedule=166-176+184-186 model=179 nesterov,weight_decay_on=182 "
            f"{_BAT}/train_mode/stop_to_firstadv.py attack.random_start,attack.init_std=26"),
        "TRADES' adjust_learning_rate over 200 1-based epochs: 0.01 from 75, 0.001 from 90, 0.0001 from 100 on"),
)}
# fmt: on

_PAPER_RUN = _at(
    f"{_PAPER} epochs,batch_size,lr,schedule,attack.eps,attack.step_size,attack.steps,{_SGD}=204 model=200"
)


def _absld(official: Recipe) -> Recipe:
    """The ABSLD paper's common setting with ``official``'s options, but the paper's (option: (value, line))."""
    paper = {"absld": {"coupling": ("separate", 161)}, "frl": {"threshold": (0.05, 202)}}  # Eq. 12, Sec. 5.1
    changed: dict[str, tuple[object, int]] = paper.get(official.method, {})  # type: ignore[assignment]
    attack = official.attack.replace(eps=8 / 255, step_size=2 / 255, steps=10)
    options = {**official.options, **{k: v for k, (v, _) in changed.items()}}
    options |= {key: getattr(attack, key) for key in _ATTACK_KEYS}
    sources = {**official.sources, **_PAPER_RUN, **{f"options.{k}": f"{_PAPER}:{n}" for k, (_, n) in changed.items()}}
    if official.teacher is not None:
        sources["teacher"] = f"{_PAPER}:200"
    notes = () if official.method == "absld" else ("the paper runs baselines in their own setting (line 202)",)
    return replace(
        official, source="absld", model="ResNet-18", teacher=official.teacher and _WRN, epochs=300, batch_size=128,
        lr=0.1, momentum=0.9, nesterov=False, weight_decay=2e-4, weight_decay_on="all", schedule=_ABSLD_SCHEDULE,
        attack=attack, options=MappingProxyType(options), notes=notes, sources=MappingProxyType(sources),
    )  # fmt: skip


def recipe(name: str, source: Source = "official") -> Recipe:
    """The training recipe of method ``name``: its official CIFAR-10 script's values, or the ABSLD paper's setting.

    ``source="absld"``: ResNet-18, SGD 0.1, 300 epochs, x0.1 at 215, 260, 285, batch 128, weight
    decay 2e-4, PGD-10 of 2/255 in 8/255 (Sec. 5.1), with the method's options.

    Example:
        >>> r = recipe("trades")
        >>> r.epochs, r.attack.eps, r.options["beta"], r.sources["epochs"]
        (76, 0.031, 6.0, 'yaodongyu/TRADES/train_trades_cifar10.py:20')
    """
    if name not in _OFFICIAL:
        raise ValueError(f"Expected `name` to be one of {', '.join(map(repr, _OFFICIAL))}, but got {name!r}.")
    if source not in ("official", "absld"):
        raise ValueError(f"Expected `source` to be one of 'official', 'absld', but got {source!r}.")
    return _OFFICIAL[name] if source == "official" else _absld(_OFFICIAL[name])
