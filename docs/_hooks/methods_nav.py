"""MkDocs hook: the Methods section of the navigation comes from the registry's declarations.

Every ``Method(...)`` that a module of ``torch_absld/methods`` registers gives one entry,
``<title>: methods/<name>.md``, read from the source (the docs build does not import torch).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

_FIELDS = ("name", "title")
_SECTION = "Methods"


def registered_methods(package: Path) -> list[tuple[str, str]]:
    """``(name, title)`` of every ``Method(...)`` declared in the modules of ``package``, sorted by name."""
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Method":
                values = dict(zip(_FIELDS, node.args))
                values.update((k.arg, k.value) for k in node.keywords if k.arg in _FIELDS)
                if all(isinstance(values.get(f), ast.Constant) for f in _FIELDS):
                    found.append((values["name"].value, values["title"].value))
    return sorted(found)


def on_config(config: Any, **kwargs: Any) -> Any:
    """Append one navigation entry per registered method to the Methods section."""
    package = Path(config["docs_dir"]).parent / "torch_absld" / "methods"
    for section in config["nav"]:
        if isinstance(section, dict) and _SECTION in section:
            section[_SECTION].extend({title: f"methods/{name}.md"} for name, title in registered_methods(package))
    return config
