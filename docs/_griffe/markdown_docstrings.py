"""Griffe extension for the API reference: read the package's docstrings as Markdown.

The docstrings are Google style with a few reST habits that plain Markdown would show verbatim:

- Sphinx roles (``:func:`pgd```, ``:meth:`step```, ``:class:`~torch_absld.ClassAccuracyResult```)
  become code spans, and cross-references (``[`pgd`][torch_absld.attack.pgd]``, turned into
  links by mkdocs-autorefs) when the name resolves to a documented public object of a
  documented module;
- an ``Example:`` section becomes ``Examples:``, which griffe parses into doctest code blocks
  (it reads the singular as a free-text admonition);
- a paragraph ending in ``::`` before an indented literal block ends in ``:``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_LITERAL = re.compile(r"(?<=\S)::[ \t]*\n(?=[ \t]*\n)")
_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|attr|data|mod|obj|exc|const):`(?P<tilde>~?)(?P<name>[^`]+)`")


class MarkdownDocstrings(griffe.Extension):
    """Rewrite the reST habits of the docstrings into Markdown, before griffe parses them."""

    def __init__(self, modules: list[str] | None = None) -> None:
        super().__init__()
        self.modules = tuple(modules or ())

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, pkg, set())

    def _walk(self, obj: griffe.Object | griffe.Alias, root: griffe.Module, seen: set[str]) -> None:
        if obj.is_alias or obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            text = _ROLE.sub(lambda m: self._replace(m, obj, root), obj.docstring.value)
            text = _EXAMPLE.sub(r"\g<indent>Examples:", text)
            obj.docstring.value = _LITERAL.sub(":\n", text)
        for member in obj.members.values():
            self._walk(member, root, seen)

    def _replace(self, match: re.Match[str], obj: griffe.Object | griffe.Alias, root: griffe.Module) -> str:
        name = match["name"].strip()
        shown = name.rsplit(".", 1)[-1] if match["tilde"] else name
        target = self._resolve(name, obj, root)
        if target is None:
            return f"`{shown}`"
        return f"[`{shown}`][{target}]"

    def _resolve(self, name: str, obj: griffe.Object | griffe.Alias, root: griffe.Module) -> str | None:
        scopes = [obj.path]
        parent = obj.parent
        while parent is not None:
            scopes.append(parent.path)
            parent = parent.parent
        candidates = [f"{scope}.{name}" for scope in scopes] + [name]
        for candidate in candidates:
            if not candidate.startswith(root.path + "."):
                continue
            try:
                found = root[candidate[len(root.path) + 1 :]]
                path = found.canonical_path
                documented = bool(found.docstring and found.docstring.value.strip())
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            parts = path.split(".")
            if not documented or any(part.startswith("_") for part in parts):
                return None
            if any(path == module or path.startswith(module + ".") for module in self.modules):
                return path
            return None
        return None
