"""MkDocs hook: the Methods section of the navigation and the table of methods come from the registry.

Every ``Method(...)`` that a module of ``torch_absld/methods`` registers gives one navigation entry,
``<title>: methods/<name>.md``, and one row of the table that replaces the marker
``<!-- methods-table -->`` of ``methods/index.md``. Both are read from the source (the docs build
does not import torch).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, NamedTuple

_FIELDS = ("name", "title", "step", "loss", "needs_teacher", "needs_validation", "defaults", "summary")
_SECTION = "Methods"
_MARKER = "<!-- methods-table -->"
_INDEX = "methods/index.md"
_REDUNDANT = re.compile(r",? as a training-step module")


class Declared(NamedTuple):
    """What the docs show of one ``Method(...)`` declaration."""

    name: str
    title: str
    needs_teacher: bool
    needs_validation: bool
    summary: str


def _value(node: ast.expr | None, docstring: str) -> Any:
    """A literal field, ``__doc__`` (the module's docstring) or ``__doc__ or "..."``; ``None`` otherwise."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return next((v for v in (_value(n, docstring) for n in node.values) if v), None)
    if isinstance(node, ast.Name) and node.id == "__doc__":
        return docstring
    if isinstance(node, ast.Constant):
        return node.value
    return None


def registered_methods(package: Path) -> list[Declared]:
    """Every ``Method(...)`` declared in the modules of ``package``, sorted by name."""
    found = []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        docstring = ast.get_docstring(tree) or ""
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Method":
                fields = dict(zip(_FIELDS, node.args))
                fields.update((k.arg, k.value) for k in node.keywords if k.arg in _FIELDS)
                values = {f: _value(fields.get(f), docstring) for f in _FIELDS}
                if not (isinstance(values["name"], str) and isinstance(values["title"], str)):
                    continue
                summary = _REDUNDANT.sub("", " ".join(str(values["summary"] or "").split("\n\n")[0].split()))
                found.append(
                    Declared(
                        values["name"],
                        values["title"],
                        bool(values["needs_teacher"]),
                        bool(values["needs_validation"]),
                        summary,
                    )
                )
    return sorted(found)


def methods_table(methods: list[Declared]) -> str:
    """The Markdown table of the methods, one row each, linking each method's page."""
    rows = ["| name | method | teacher | validation split | summary |", "| --- | --- | --- | --- | --- |"]
    for m in methods:
        yes_no = ("yes" if m.needs_teacher else "no", "yes" if m.needs_validation else "no")
        rows.append(f"| `{m.name}` | [{m.title}]({m.name}.md) | {yes_no[0]} | {yes_no[1]} | {m.summary} |")
    return "\n".join(rows)


def _package(config: Any) -> Path:
    return Path(config["docs_dir"]).parent / "torch_absld" / "methods"


def on_config(config: Any, **kwargs: Any) -> Any:
    """Append one navigation entry per registered method to the Methods section."""
    for section in config["nav"]:
        if isinstance(section, dict) and _SECTION in section:
            entries = ({m.title: f"methods/{m.name}.md"} for m in registered_methods(_package(config)))
            section[_SECTION].extend(entries)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, **kwargs: Any) -> str:
    """Fill the marker of the methods' index with the table of the registered methods."""
    if page.file.src_uri != _INDEX:
        return markdown
    if _MARKER not in markdown:
        raise ValueError(f"Expected the marker {_MARKER} in {_INDEX}, but it is missing.")
    return markdown.replace(_MARKER, methods_table(registered_methods(_package(config))))
