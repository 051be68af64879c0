"""Griffe extension for the API reference: read the package's docstrings as Markdown.

The docstrings are Google style with a few reST habits that plain Markdown would show verbatim:

- Sphinx roles (``:func:`pgd```, ``:meth:`step```, ``:class:`~torch_absld.ClassAccuracyResult```)
  become code spans, and cross-references (``[`pgd`][torch_absld.attack.pgd]``, turned into
  links by mkdocs-autorefs) when the name resolves to a documented public object of a
  documented module;
- an ``Example:`` section becomes ``Examples:``, which griffe parses into doctest code blocks
  (it reads the singular as a free-text admonition);
- a paragraph ending in ``::`` before an indented literal block ends in ``:``;
- inline maths ``$...$`` broken over lines is joined into one line (a continuation line that
  starts with ``+`` or ``-`` would otherwise start a Markdown list);
- an ``Args:`` entry for several parameters (``student, teacher, num_classes: ...``) becomes one
  entry per parameter with the same description.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_LITERAL = re.compile(r"(?<=\S)::[ \t]*\n(?=[ \t]*\n)")
_ARGS = re.compile(r"^(?P<indent>[ \t]*)(?:Args|Arguments|Parameters):[ \t]*$")
_GROUP = re.compile(r"^(?P<indent>[ \t]+)(?P<names>\*{0,2}\w+(?:,[ \t]*\*{0,2}\w+)+):(?P<text>.*)$")
_INLINE_MATH = re.compile(r"(?<![$\\])\$(?!\$)(?=\S)[^$]*?\n[^$]*?(?<=\S)\$(?!\$)")
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
            text = _INLINE_MATH.sub(_join_math, text)
            obj.docstring.value = _split_groups(_LITERAL.sub(":\n", text))
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


def _join_math(match: re.Match[str]) -> str:
    """An inline formula on one line; text across a paragraph break is not a formula and stays."""
    return match[0] if re.search(r"\n[ \t]*\n", match[0]) else re.sub(r"\s*\n\s*", " ", match[0])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_groups(text: str) -> str:
    """One ``Args:`` entry per parameter where an entry names several (``a, b: text``)."""
    lines, out, section = text.splitlines(), [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _ARGS.match(line)
        if header:
            section = len(header["indent"])
        elif section is not None and line.strip() and _indent(line) <= section:
            section = None
        group = _GROUP.match(line) if section is not None else None
        if group is None:
            out.append(line)
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > len(group["indent"])):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1
        for name in group["names"].split(","):
            out.append(f"{group['indent']}{name.strip()}:{group['text']}")
            out.extend(lines[i + 1 : j])
        i = j
    return "\n".join(out)
