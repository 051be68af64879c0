r"""MkDocs hook: the pages' maths rendered to MathML at build time, so it shows without a network.

``pymdownx.arithmatex`` (generic mode) wraps each formula in ``<span class="arithmatex">\(...\)</span>``
or ``<div class="arithmatex">\[...\]</div>``; this hook replaces each wrapper with the MathML that
``latex2mathml`` makes of its TeX. Browsers render MathML natively: no script, no CDN.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert

_MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*\\(?P<open>[(\[])(?P<tex>.*?)\\[)\]]\s*</(?P=tag)>', re.DOTALL
)


# TeX that latex2mathml does not know, written with what it does: ``\arg``, a sized ``\|``.
_REWRITES = (
    (re.compile(r"\\arg(?![a-zA-Z])"), r"\\mathrm{arg}\\,"),
    (re.compile(r"\\[Bb]igg?[lrm]?\\\|"), r"\\|"),
)


def _mathml(match: re.Match[str]) -> str:
    tex = html.unescape(match["tex"]).strip()
    for pattern, replacement in _REWRITES:
        tex = pattern.sub(replacement, tex)
    display = "block" if match["open"] == "[" else "inline"
    return convert(tex, display=display)


def on_page_content(html_text: str, **kwargs: Any) -> str:
    """Replace every arithmatex formula of a page with MathML."""
    return _MATH.sub(_mathml, html_text)
