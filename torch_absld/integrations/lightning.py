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

    The loss records class risks in training mode (not in validation); at every training epoch
    end this all-reduces them and updates both temperature vectors (buffers: Lightning's
    checkpoints keep them). A distiller's frozen teacher is kept out of DDP's broadcasts.

    Args:
        loss_fn: the loss to step; ``None`` finds the only :class:`~torch_absld.ABSLDLoss` in the module.
        follow_lr: $\beta = \beta_0 \cdot \mathrm{lr} / \mathrm{lr}_0$ of ``trainer.optimizers[optimizer_index]``'s
            ``param_group`` at each epoch end, as :func:`~torch_absld.follow_optimizer_lr`.
        log: log ``absld/beta`` and the mean, min and max of both temperature vectors;
            ``log_per_class``: also each class's temperature (``absld/tau_adv/3``, ...).

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
        self.loss_fn, self.follow_lr, self.log, self.log_per_class = loss_fn, follow_lr, log, log_per_class
        self.optimizer_index, self.param_group = optimizer_index, param_group

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
        if not 0 <= self.optimizer_index < (count := len(trainer.optimizers)):
            raise ValueError(f"Expected `optimizer_index` in [0, {count}), but got {self.optimizer_index}.")
        groups = trainer.optimizers[self.optimizer_index].param_groups
        if not 0 <= self.param_group < len(groups):
            raise ValueError(f"Expected `param_group` in [0, {len(groups)}), but got {self.param_group}.")
        return groups[self.param_group]  # type: ignore[no-any-return, unused-ignore]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.follow_lr:  # without a scheduler, the learning rate at the start is the reference
            group = self._group(trainer)
            group.setdefault("initial_lr", float(group["lr"]))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss_fn = self.loss_fn
        if loss_fn is None:  # pragma: no cover - set in setup()
            raise RuntimeError("ABSLDCallback.setup() did not run before on_train_epoch_end().")
        if self.follow_lr:
            group = self._group(trainer)
            initial = float(group.get("initial_lr", group["lr"]))
            if initial <= 0:
                raise ValueError(f"Expected the optimizer's initial learning rate > 0, but got {initial}.")
            ratio = float(group["lr"]) / initial
            for controller in (c for c in (loss_fn.adv, loss_fn.clean) if c.base_lr > 0):
                controller.lr = controller.base_lr * ratio
        tau_adv, tau_clean = loss_fn.step()
        if not self.log:
            return
        metrics: dict[str, float] = {"absld/beta": float(loss_fn.adv.lr)}
        for name, tau in (("tau_adv", tau_adv), ("tau_clean", tau_clean)):
            values = tau.detach().cpu().to(torch.float64)
            mean, low, high = torch.stack([values.mean(), values.min(), values.max()]).tolist()
            metrics.update({f"absld/{name}_mean": mean, f"absld/{name}_min": low, f"absld/{name}_max": high})
            if self.log_per_class:
                metrics.update({f"absld/{name}/{k}": float(v) for k, v in enumerate(values.tolist())})
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=False)
