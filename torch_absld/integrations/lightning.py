"""Lightning callback: adapt ABSLD's temperatures at the end of every training epoch."""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'torch_absld.integrations.lightning needs Lightning: pip install "torch-absld[lightning]"'
    ) from error

import torch

from ..loss import ABSLDLoss
from ..methods.base import mark_ddp_local_state

__all__ = ["ABSLDCallback"]


class ABSLDCallback(pl.Callback):
    r"""Step an :class:`~torch_absld.ABSLDLoss`'s temperatures (Eq. 11) at each train epoch end.

    The ``LightningModule`` computes the loss in ``training_step`` as usual (directly or through
    an :class:`~torch_absld.ABSLDDistiller`); the loss records the class risks in training mode,
    and Lightning's validation (eval mode) records none. This callback then, at the end of every
    training epoch, all-reduces the risks across ranks and updates both temperature vectors. The
    temperatures are buffers of the module, so Lightning's checkpoints save and restore them.

    Under a DDP strategy the per-rank risk sums are safe by construction (they are not
    buffers); the callback marks a distiller's frozen teacher so that DDP neither broadcasts
    nor reduces it (see :func:`~torch_absld.mark_ddp_local_state`).

    Args:
        loss_fn: the loss whose temperatures to step; ``None`` finds the only
            :class:`~torch_absld.ABSLDLoss` inside the ``LightningModule``.
        follow_lr: make $\beta$ follow the optimizer: $\beta = \beta_0 \cdot \mathrm{lr} /
            \mathrm{lr}_0$, with lr read at the end of the epoch (Lightning steps epoch
            schedulers before the epoch-end hooks, so at a milestone lr and beta drop together
            and that epoch's update uses the reduced beta, as in the authors' script) and
            $\mathrm{lr}_0$ the ``initial_lr`` set by the scheduler. With ``MultiStepLR`` this is
            the authors' "beta times 0.1 at each milestone".
        optimizer_index: which of ``trainer.optimizers`` to follow.
        param_group: which parameter group of it.
        log: log ``absld/beta`` and the mean, min and max of both temperature vectors.
        log_per_class: also log each class's temperature (``absld/tau_adv/3``, ...).

    Example:
        ``trainer = Trainer(callbacks=[ABSLDCallback(follow_lr=True)])``
    """

    def __init__(
        self,
        loss_fn: ABSLDLoss | None = None,
        *,
        follow_lr: bool = False,
        optimizer_index: int = 0,
        param_group: int = 0,
        log: bool = True,
        log_per_class: bool = False,
    ) -> None:
        super().__init__()
        if loss_fn is not None and not isinstance(loss_fn, ABSLDLoss):
            raise TypeError(f"Expected `loss_fn` to be an ABSLDLoss or None, but got {type(loss_fn).__name__}.")
        self.loss_fn = loss_fn
        self.follow_lr = follow_lr
        self.optimizer_index = optimizer_index
        self.param_group = param_group
        self.log = log
        self.log_per_class = log_per_class

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.loss_fn is None:
            found = [m for m in pl_module.modules() if isinstance(m, ABSLDLoss)]
            if len(found) != 1:
                raise ValueError(
                    f"Expected exactly one ABSLDLoss inside the LightningModule, but found {len(found)}. "
                    "Pass it explicitly: ABSLDCallback(loss_fn=module.loss_fn)."
                )
            self.loss_fn = found[0]
        if stage == "fit":
            mark_ddp_local_state(pl_module)  # before the strategy wraps the module in DDP

    def _group(self, trainer: pl.Trainer) -> dict[str, Any]:
        optimizers = trainer.optimizers
        if not 0 <= self.optimizer_index < len(optimizers):
            raise ValueError(f"Expected `optimizer_index` in [0, {len(optimizers)}), but got {self.optimizer_index}.")
        groups = optimizers[self.optimizer_index].param_groups
        if not 0 <= self.param_group < len(groups):
            raise ValueError(f"Expected `param_group` in [0, {len(groups)}), but got {self.param_group}.")
        group: dict[str, Any] = groups[self.param_group]
        return group

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.follow_lr:  # without a scheduler, the learning rate at the start is the reference
            group = self._group(trainer)
            group.setdefault("initial_lr", float(group["lr"]))

    def _lr_ratio(self, trainer: pl.Trainer) -> float:
        group = self._group(trainer)
        initial = float(group.get("initial_lr", group["lr"]))
        if initial <= 0:
            raise ValueError(f"Expected the optimizer's initial learning rate > 0, but got {initial}.")
        return float(group["lr"]) / initial

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss_fn = self.loss_fn
        if loss_fn is None:  # pragma: no cover - set in setup()
            raise RuntimeError("ABSLDCallback.setup() did not run before on_train_epoch_end().")
        controllers = (loss_fn.adv, loss_fn.clean)
        if self.follow_lr:
            ratio = self._lr_ratio(trainer)
            for controller in controllers:
                if controller.base_lr > 0:
                    controller.lr = controller.base_lr * ratio
        tau_adv, tau_clean = loss_fn.step()
        if not self.log:
            return
        metrics: dict[str, float] = {"absld/beta": float(loss_fn.adv.lr)}
        for name, tau in (("tau_adv", tau_adv), ("tau_clean", tau_clean)):
            values = tau.detach().cpu().to(torch.float64)
            metrics[f"absld/{name}_mean"] = float(values.mean())
            metrics[f"absld/{name}_min"] = float(values.min())
            metrics[f"absld/{name}_max"] = float(values.max())
            if self.log_per_class:
                metrics.update({f"absld/{name}/{k}": float(v) for k, v in enumerate(values.tolist())})
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=False)
