"""Class-wise robustness evaluation under FGSM, PGD-20, CW-inf-30 and AutoAttack, as the paper reports it."""

from __future__ import annotations

import contextlib
import importlib
import numbers
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from .._internal import checks
from .._internal.distributed import all_reduce_sum, is_distributed
from .._internal.keyed import keyed_start
from .._internal.modules import as_model_input, frozen_model, module_device, unwrap_model
from ..attack.config import checked_fields
from ..attack.engine import _pgd
from .autoattack import auto_attack, check_logits_of
from .metrics import ClassAccuracy, class_accuracy_summary, worst_class_count
from .protocol import ATTACKS, attack_config, resolve_attack_settings
from .report import ATTACK_LABELS, RobustnessReport

__all__ = ["evaluate_robustness"]


def evaluate_robustness(
    model: nn.Module,
    loader: Iterable[Any],
    num_classes: int,
    attacks: str | Sequence[str] = ATTACKS,
    eps: float = 8 / 255,
    *,
    device: torch.device | str | None = None,
    worst_fraction: float | None = None,
    progress: bool = True,
    seed: int = 0,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    attack_overrides: Mapping[Any, Mapping[str, Any]] | None = None,
    process_group: checks.ProcessGroupArg = None,
    validate_args: bool = True,
) -> RobustnessReport:
    r"""Per-class accuracy of ``model`` on ``loader``, clean and under each attack, in one pass.

    Each ``(input, target, ...)`` batch is attacked by each of ``attacks`` (white-box, L-inf radius
    ``eps``, :func:`default_attack_settings` changed by ``attack_overrides``, e.g. ``{"pgd": {"steps":
    50}}``) and the predictions counted per class: *Avg.* over all samples, *Worst* the mean of the
    $\lceil f \cdot C \rceil$ lowest classes ($f$: ``worst_fraction``), *Overall* their mean. The
    model (logits; DDP unwrapped, not moved) runs in eval mode with frozen parameters (restored);
    batches go to ``device`` (``None``: the model's). PGD's uniform start is a hash of ``seed`` and
    the sample (the same in any batch, order or rank). Under ``torch.distributed`` one ``all_reduce``
    sums the counts (every rank of ``process_group`` calls; ``False``: this rank), without a
    ``DistributedSampler``'s padding. Empty batches are skipped; every class must appear. ``progress``:
    a ``tqdm`` bar on rank 0; ``validate_args``: check label and input values (one read per batch).
    Returns a :class:`~torch_absld.RobustnessReport` (``report["pgd"].worst``, ``print(report)``).

    Shape:
        - input batches: $(N, \dots)$ in ``[clip_min, clip_max]``; target batches: $(N,)$ in $[0, C)$
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}.")
    num_classes = checks.check_num_classes(num_classes, minimum=1)
    worst_class_count(num_classes, worst_fraction)  # validates worst_fraction
    eps = checks.check_positive(eps, "eps", allow_zero=True)
    bounds = checked_fields({"clip_min": clip_min, "clip_max": clip_max})
    clip_min, clip_max = bounds["clip_min"], bounds["clip_max"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"Expected `seed` to be an int, but got {type(seed).__name__}.")
    seed = int(seed)
    progress = checks.check_bool(progress, "progress")
    checking = checks.values_checkable(checks.check_bool(validate_args, "validate_args"))
    process_group = checks.check_process_group(process_group)
    if isinstance(loader, (Tensor, str)) or not isinstance(loader, Iterable):
        raise TypeError(f"Expected `loader` to be an iterable of (input, target) batches, got {type(loader).__name__}.")
    settings = resolve_attack_settings(attacks, eps, attack_overrides)
    configs = {name: attack_config(setting, clip_min, clip_max) for name, setting in settings.items()}
    evaluated = unwrap_model(model)
    try:
        target_device = torch.device(device) if device is not None else module_device(evaluated) or torch.device("cpu")
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Expected `device` to be a torch.device, a device string or None, got {device!r}.") from error
    metrics = {name: ClassAccuracy(num_classes).to(target_device) for name in settings}
    remaining = _samples_to_count(loader)
    bar = _progress_bar(loader, progress, process_group)
    checked_output = False

    def adversarial(name: str, x: Tensor, y: Tensor) -> Tensor:
        setting, config = settings[name], configs[name]
        if config is None:  # clean, or a zero radius
            return x
        if name == "autoattack":
            options = {key: setting[key] for key in ("version", "attacks", "batch_size")}
            options |= {"eps": config.eps, "seed": seed, "device": x.device, "clip_min": clip_min, "clip_max": clip_max}
            return auto_attack(evaluated, x, y, num_classes=num_classes, validate_args=False, **options)
        uniform = setting["random_start"] == "uniform"
        start = keyed_start(x, seed, config.eps) if uniform else None
        return _pgd(evaluated, x, y, config=config, objective=setting["objective"], start=start)

    try:
        with frozen_model(evaluated):
            for index, batch in enumerate(loader):
                if remaining is not None and remaining <= 0:
                    break
                with _in_batch(index):
                    x, y = _checked_batch(batch)
                if remaining is not None:
                    x, y = x[:remaining], y[:remaining]
                    remaining -= x.shape[0]
                x, y = x.to(target_device), y.to(target_device)
                if x.shape[0] > 0:  # an empty batch (the end of a sharded epoch) has nothing to count
                    if checking:
                        with _in_batch(index):
                            checks.raise_first(
                                [checks.label_range_flag(y, num_classes), checks.input_flag(x, clip_min, clip_max)]
                            )
                    if not checked_output:  # the model's output, before any attack needs it
                        with torch.no_grad():
                            check_logits_of(evaluated(as_model_input(evaluated, x)), x.shape[0], num_classes)
                        checked_output = True
                    for name in settings:
                        x_adv = adversarial(name, x, y)
                        with torch.no_grad():
                            logits = evaluated(as_model_input(evaluated, x_adv))
                        check_logits_of(logits, x.shape[0], num_classes)
                        metrics[name]._update(logits, y)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(_running_text(metrics), refresh=False)
    finally:
        if bar is not None:
            bar.close()
    counts = all_reduce_sum(torch.stack([metric.counts for metric in metrics.values()]), process_group).tolist()
    results = {
        name: class_accuracy_summary(correct, total, worst_fraction=worst_fraction)
        for name, (correct, total) in zip(settings, counts)
    }
    return RobustnessReport(results, num_classes=num_classes, eps=eps, worst_fraction=worst_fraction, settings=settings)


def _samples_to_count(loader: Iterable[Any]) -> int | None:
    """How many samples this rank counts under a ``DistributedSampler`` (its padding left out), else ``None``."""
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, DistributedSampler):  # or inside a batch_sampler=BatchSampler(DistributedSampler)
        sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    if not isinstance(sampler, DistributedSampler):
        return None
    dataset_size = len(sampler.dataset)  # type: ignore[arg-type]
    if sampler.drop_last:
        if dropped := dataset_size % sampler.num_replicas:
            warnings.warn(f"The DistributedSampler has drop_last=True: {dropped} sample(s) left out.", stacklevel=3)
        return None
    # The padding repeats the first indices at the end; rank r's positions >= dataset_size are its last ones.
    return len(range(sampler.rank, dataset_size, sampler.num_replicas))


def _checked_batch(batch: Any) -> tuple[Tensor, Tensor]:
    """A batch as (input, int64 labels), its types and shapes checked."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"Expected (input, target) pairs, but got {type(batch).__name__}.")
    x = batch[0]
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1:
        raise TypeError(f"Expected a floating point `input` of shape (N, ...), but got {x!r:.80}.")
    return x, checks.check_integer_labels(batch[1], None, batch_size=x.shape[0], check_values=False)


@contextlib.contextmanager
def _in_batch(index: int) -> Iterator[None]:
    """Prefix the errors raised inside with batch ``index`` of ``loader``."""
    try:
        yield
    except (TypeError, ValueError) as error:
        raise type(error)(f"In batch {index} of `loader`: {error}") from None


def _running_text(metrics: Mapping[str, ClassAccuracy]) -> str:
    """The running accuracy of each attack (one read from the device)."""
    sums = torch.stack([metric.accumulator.sum(dim=1) for metric in metrics.values()]).tolist()
    return " ".join(
        f"{ATTACK_LABELS[name]} {100 * correct / total:.1f}" for name, (correct, total) in zip(metrics, sums) if total
    )


def _progress_bar(loader: Iterable[Any], progress: bool, process_group: checks.ProcessGroupArg) -> Any:
    if not progress:
        return None
    try:
        tqdm = importlib.import_module("tqdm.auto").tqdm
    except ImportError as error:
        raise ImportError(
            'The progress bar needs `tqdm`: pip install "torch-absld[eval]", or pass progress=False.'
        ) from error
    if is_distributed(process_group) and dist.get_rank() != 0:
        return None
    total = len(loader) if isinstance(loader, Sized) else None
    return tqdm(total=total, desc="robustness", unit="batch", leave=False, dynamic_ncols=True)
