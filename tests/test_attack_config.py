"""PGDConfig: one settings object, checked once, shared by the functional and the module forms."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _models import tiny_batch, tiny_cnn

import torch_absld._internal.compile as compile_helpers
from torch_absld import KLPGDAttack, PGDConfig, kl_pgd, pgd


def test_defaults_are_the_papers_attack():
    config = PGDConfig()
    assert (config.eps, config.step_size, config.steps) == (8 / 255, 2 / 255, 10)
    assert (config.random_start, config.init_std, config.project_start) == ("normal", 1e-3, True)
    assert (config.clip_min, config.clip_max, config.loss_scale) == (0.0, 1.0, None)


def test_frozen_and_replace_checks_the_change():
    config = PGDConfig(eps=0.1, steps=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.eps = 0.2  # type: ignore[misc]
    longer = config.replace(steps=20)
    assert (longer.steps, config.steps, longer.eps) == (20, 3, 0.1)
    with pytest.raises(ValueError, match="`steps` to be an int >= 1"):
        config.replace(steps=0)
    assert PGDConfig(eps=1).eps == 1.0
    assert isinstance(PGDConfig(eps=1).eps, float)
    assert PGDConfig(eps=0.1) == PGDConfig(eps=0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": -0.1}, ValueError, "`eps` >= 0"),
        ({"eps": float("nan")}, ValueError, "`eps` to be finite"),
        ({"eps": "a"}, TypeError, "`eps` to be a real number"),
        ({"step_size": 0.0}, ValueError, "`step_size` > 0"),
        ({"steps": 2.0}, ValueError, "`steps` to be an int >= 1"),
        ({"random_start": "gauss"}, ValueError, "`random_start` to be one of"),
        ({"init_std": -1.0}, ValueError, "`init_std` >= 0"),
        ({"clip_min": 1.0, "clip_max": 0.0}, ValueError, "`clip_min` < `clip_max`"),
        ({"student_temperature": 0.0}, ValueError, "`student_temperature` > 0"),
        ({"loss_scale": 0.0}, ValueError, "`loss_scale` > 0"),
        ({"loss_scale": -1.0}, ValueError, "`loss_scale` > 0"),
        ({"loss_scale": "x"}, TypeError, "`loss_scale` to be a real number"),
        ({"project_start": 1}, TypeError, "`project_start` to be a bool"),
        ({"compile_mode": 3}, TypeError, "`compile_mode` to be a str or None"),
        ({"model_mode": "training"}, ValueError, "`model_mode` to be one of 'eval', 'train'"),
    ],
)
def test_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        PGDConfig(**kwargs)
    with pytest.raises(error, match=match):
        pgd(tiny_cnn(), *tiny_batch(), **kwargs)


def test_config_form_equals_keyword_form():
    model = tiny_cnn()
    x, y = tiny_batch()
    config = PGDConfig(eps=0.05, step_size=0.02, steps=3, random_start="uniform")
    want = pgd(model, x, y, eps=0.05, step_size=0.02, steps=3, random_start="uniform", seed=4)
    assert torch.equal(pgd(model, x, y, config=config, seed=4), want)
    assert torch.equal(KLPGDAttack(model, config=config)(x, y, seed=4), want)
    assert torch.equal(
        KLPGDAttack(model, eps=0.05, step_size=0.02, steps=3, random_start="uniform")(x, y, seed=4), want
    )
    # Keywords change a given config.
    assert torch.equal(
        pgd(model, x, y, config=config.replace(steps=7), seed=4), pgd(model, x, y, config=config, steps=7, seed=4)
    )
    soft = torch.softmax(torch.randn(8, 5), 1)
    assert torch.equal(
        kl_pgd(model, x, soft, config=config, seed=1), pgd(model, x, soft, config=config, objective="kl", seed=1)
    )


def test_module_settings_read_and_write_through_the_config():
    attack = KLPGDAttack(tiny_cnn(), config=PGDConfig(steps=4), eps=0.1)
    assert (attack.eps, attack.steps, attack.step_size, attack.use_compile) == (0.1, 4, 2 / 255, False)
    assert attack.config == PGDConfig(steps=4, eps=0.1)
    attack.steps = 6
    assert attack.config.steps == 6
    with pytest.raises(ValueError, match="`eps` >= 0"):
        attack.eps = -1.0
    assert attack.eps == 0.1
    assert "steps=6" in repr(attack)
    with pytest.raises(TypeError, match="`config` to be a PGDConfig"):
        KLPGDAttack(tiny_cnn(), config={"eps": 0.1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pass per-sample tensors when calling"):
        KLPGDAttack(tiny_cnn(), eps=torch.full((8,), 0.1))  # type: ignore[arg-type]


def test_compile_without_the_dynamo_option_names_the_torch_version(monkeypatch):
    monkeypatch.setattr(compile_helpers, "_FLAG", "an_option_this_torch_lacks")
    with pytest.raises(RuntimeError, match=rf"need PyTorch >= {compile_helpers.MIN_TORCH_VERSION}.*compile=False"):
        PGDConfig(compile=True)
    with pytest.raises(RuntimeError, match=r"torch\._dynamo\.config\.an_option_this_torch_lacks"):
        KLPGDAttack(tiny_cnn(), compile=True)
