"""The package's import rules, its public names, and the 0.1 paths that still work."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import torch_absld
from torch_absld._internal.compat import MOVED_MODULES

PACKAGE = Path(torch_absld.__file__).parent
CORE = [
    "stats.py",
    "temperature.py",
    "class_weights.py",
    "class_eps.py",
    "multipliers.py",
    "averaging.py",
    "validation.py",
    "kl.py",
    "loss.py",
    "losses",
    "normalize.py",
    "weights.py",
    "precision.py",
    "precision_flags.py",
    "attack",
    "_internal",
]
OPTIONAL = ["sklearn", "matplotlib", "tqdm", "timm", "lightning", "pyautoattack", "torchattacks", "torchvision"]


def _modules(*parts: str) -> list[Path]:
    paths = [PACKAGE / part for part in parts]
    return sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py")))


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, as an absolute name (relative imports resolved)."""
    package = ".".join(("torch_absld", *path.relative_to(PACKAGE).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(
    ("parts", "forbidden"),
    [
        (CORE, ("evaluation", "methods", "integrations", "demo")),
        (["evaluation"], ("methods", "integrations", "demo")),
        (["methods"], ("evaluation", "integrations", "demo")),
        (["integrations"], ("evaluation", "demo")),
    ],
)
def test_import_rules(parts, forbidden):
    files = _modules(*parts)
    assert files
    for path in files:
        bad = sorted(name for name in _imported(path) for part in forbidden if name.startswith(f"torch_absld.{part}"))
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_the_import_rule_check_sees_relative_imports():
    names = _imported(PACKAGE / "evaluation" / "evaluate.py")
    assert "torch_absld.attack.engine.run_pgd" in names
    assert "torch_absld._internal.modules" in names


def test_import_torch_absld_loads_no_optional_dependency():
    # What `import torch` loads by itself (some torch builds import tqdm) is not ours.
    code = (
        "import sys, json, torch; before = set(sys.modules); import torch_absld; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(result.stdout)
    assert "torch_absld.evaluation" in loaded
    assert [name for name in loaded if name.split(".")[0] in OPTIONAL] == []
    assert "torch_absld.integrations.lightning" not in loaded
    assert "torch_absld.demo" not in loaded


def test_no_module_above_400_lines():
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_public_names_are_sorted_and_importable():
    assert torch_absld.__all__ == sorted(torch_absld.__all__)
    for name in torch_absld.__all__:
        assert getattr(torch_absld, name) is not None
    assert torch_absld.attack.__all__ == sorted(torch_absld.attack.__all__)
    assert torch_absld.losses.__all__ == sorted(torch_absld.losses.__all__)
    assert torch_absld.methods.__all__ == sorted(torch_absld.methods.__all__)


@pytest.mark.parametrize("module", [torch_absld, torch_absld.attack])
@pytest.mark.parametrize(
    ("name", "new"),
    [
        ("pgd_step", "torch_absld.attack.engine._pgd_step"),
        ("compiled_pgd_step", "torch_absld.attack.engine._compiled_pgd_step"),
        ("trace_input_gradients", "torch_absld._internal.compile.trace_input_gradients"),
        ("unwrap_model", "torch_absld._internal.modules.unwrap_model"),
    ],
)
def test_private_helpers_of_0_1_still_import_with_a_warning(module, name, new):
    assert name not in module.__all__
    with pytest.warns(DeprecationWarning, match=rf"`{module.__name__}.{name}` is private"):
        value = getattr(module, name)
    new_module, new_name = new.rsplit(".", 1)
    assert value is getattr(sys.modules[new_module], new_name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        module.no_such_name


def test_0_1_module_paths_still_import_with_a_warning():
    # In a fresh interpreter: a path imported once stays in sys.modules and warns no more.
    code = """
import importlib, json, warnings
import torch_absld
from torch_absld._internal.compat import MOVED_MODULES
out = {}
for old, new in MOVED_MODULES.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attribute = getattr(torch_absld, old.rsplit(".", 1)[1])  # torch_absld.metrics without an import
        module = importlib.import_module(old)
    out[old] = [module is importlib.import_module(new), attribute is module, [str(w.message) for w in caught]]
from torch_absld.metrics import ClassAccuracy
from torch_absld.distiller import ABSLDDistiller
from torch_absld.hooks import follow_optimizer_lr
out["same objects"] = [ClassAccuracy is torch_absld.ClassAccuracy, ABSLDDistiller is torch_absld.ABSLDDistiller,
                       follow_optimizer_lr is torch_absld.follow_optimizer_lr]
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    out = json.loads(result.stdout)
    assert out.pop("same objects") == [True, True, True]
    assert set(out) == set(MOVED_MODULES)
    for old, (same, attribute_same, messages) in out.items():
        assert same, old
        assert attribute_same, old
        assert messages, old
        assert all(f"`{old}` moved to `{MOVED_MODULES[old]}`" in message for message in messages), messages


def test_the_evaluation_package_keeps_the_0_1_module_names():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from torch_absld.evaluation import evaluate_robustness

    assert evaluate_robustness is torch_absld.evaluate_robustness
