"""The package's import rules, its public names and its import cost."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import torch_absld

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
    names = _imported(PACKAGE / "evaluation" / "evaluate.py")  # `from ..attack.engine import _pgd`
    assert {"torch_absld.attack.engine", "torch_absld.attack.engine._pgd", "torch_absld._internal.modules"} <= names


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
    import torch_absld.losses  # not imported by `import torch_absld`

    assert torch_absld.__all__ == sorted(torch_absld.__all__)
    for name in torch_absld.__all__:
        assert getattr(torch_absld, name) is not None
    assert torch_absld.attack.__all__ == sorted(torch_absld.attack.__all__)
    assert torch_absld.losses.__all__ == sorted(torch_absld.losses.__all__)
    assert torch_absld.methods.__all__ == sorted(torch_absld.methods.__all__)


def test_import_is_cheap_no_dynamo_no_import_hook():
    code = (
        "import sys, json, torch; before = list(sys.meta_path); import torch_absld; "
        "print(json.dumps(['torch._dynamo' in sys.modules, "
        "[type(f).__module__ for f in sys.meta_path if f not in before]]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    dynamo_loaded, added_finders = json.loads(result.stdout)
    assert dynamo_loaded is False
    assert added_finders == []


def test_constant_mark_is_the_one_torch_compiler_sets():
    from torch_absld import precision

    def probe():
        return 1

    torch.compiler.assume_constant_result(probe)
    marked = {name for name in vars(probe) if name.startswith("_dynamo")}
    assert marked
    assert all(getattr(precision._cpu_bf16, name) is True for name in marked)


def test_the_evaluation_package_keeps_the_0_1_module_names():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from torch_absld.evaluation import evaluate_robustness

    assert evaluate_robustness is torch_absld.evaluate_robustness
