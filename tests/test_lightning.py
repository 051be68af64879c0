"""ABSLDCallback in a tiny Lightning run on the CPU equals the plain loop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

pl = pytest.importorskip("lightning.pytorch")

from torch_absld import ABSLDLoss, ABSLDStep, KLPGDAttack  # noqa: E402
from torch_absld.integrations.lightning import ABSLDCallback  # noqa: E402

C = 4
BETA = 0.5


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, C))


def _data(n: int = 24) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 4, 4, generator=g)
    y = torch.arange(n) % C
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=False)


class DistillModule(pl.LightningModule):
    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.distiller = ABSLDStep(student, teacher, C, steps=2, random_start=None, lr=BETA)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.distiller(x, y).loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.distiller(x, y).loss)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.distiller.student.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def _plain_loop(student, teacher, data, epochs):
    """The README loop with the authors' schedule by hand: at the end of epoch 2 (1-based) the lr and
    beta drop x0.1 together, and that epoch's temperature update already uses the reduced beta."""
    loss_fn = ABSLDLoss(C, lr=BETA)
    attack = KLPGDAttack(student, steps=2, random_start=None)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    history = []
    for epoch in range(epochs):
        for x, y in data:
            with torch.no_grad():
                teacher_logits = teacher(x)
            x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
            loss = loss_fn(student(x_adv), student(x), teacher_logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch == 1:  # MultiStepLR(milestones=[2], gamma=0.1)
            optimizer.param_groups[0]["lr"] = 0.01
        loss_fn.adv.lr = loss_fn.clean.lr = BETA * (1.0 if epoch == 0 else 0.1)
        history.append([t.clone() for t in loss_fn.step()])
    return history


@pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode:UserWarning")
@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_callback_matches_plain_loop():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        student, teacher = _net(1), _net(2)
        ref_student = copy.deepcopy(student)
        want = _plain_loop(ref_student, copy.deepcopy(teacher).eval(), _data(), epochs=3)

        module = DistillModule(student, teacher)
        callback = ABSLDCallback(follow_lr=True, log_per_class=True)
        trainer = pl.Trainer(
            accelerator="cpu",
            max_epochs=3,
            enable_checkpointing=False,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[callback],
        )
        trainer.fit(module, train_dataloaders=_data(), val_dataloaders=_data(8))
    finally:
        torch.set_num_threads(threads)

    assert callback.loss_fn is module.distiller.loss_fn
    tau_adv, tau_clean = module.distiller.temperatures
    assert_close(tau_adv, want[-1][0])
    assert_close(tau_clean, want[-1][1])
    assert not torch.equal(tau_adv, torch.ones(C))
    for p, q in zip(student.parameters(), ref_student.parameters(), strict=True):
        assert_close(p, q)
    # Beta followed the learning rate: the update at the milestone already used 0.1 * BETA.
    assert module.distiller.loss_fn.adv.lr == pytest.approx(0.1 * BETA)
    assert module.distiller.loss_fn.adv.epochs_stepped == 3
    metrics = trainer.callback_metrics
    assert float(metrics["absld/beta"]) == pytest.approx(0.1 * BETA)
    assert float(metrics["absld/tau_adv/0"]) == pytest.approx(float(tau_adv[0]))
    assert float(metrics["absld/tau_clean_max"]) == pytest.approx(float(tau_clean.max()))
    # Validation ran in eval mode and recorded no risk; the teacher never left eval mode.
    assert module.distiller.loss_fn.adv.count.sum() == 0
    assert not module.distiller.teacher.training
    assert "val_loss" in metrics


def test_callback_needs_one_loss():
    class Two(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = ABSLDLoss(C), ABSLDLoss(C)

    with pytest.raises(ValueError, match=r"exactly one ABSLDLoss inside the LightningModule, but found 2"):
        ABSLDCallback().setup(None, Two(), "fit")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`loss_fn` to be an ABSLDLoss or None"):
        ABSLDCallback(loss_fn=nn.Linear(2, 2))  # type: ignore[arg-type]
    module = Two()
    ABSLDCallback(loss_fn=module.a).setup(None, module, "fit")  # type: ignore[arg-type]
    assert "a.adv.accumulator" in module._ddp_params_and_buffers_to_ignore


def test_not_imported_by_package():
    import subprocess
    import sys

    code = "import sys, torch_absld; print(any(m.startswith(('lightning', 'pytorch_lightning')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
