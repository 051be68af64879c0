"""The Python code blocks of the documentation and of README.md run as written.

Every block fenced as ```python in ``docs/**/*.md`` and ``README.md`` runs, in page order, in
one namespace per page (a later block may use what an earlier one defined). A block that needs
data, a GPU, ``torchrun`` or an optional package the tests do not have is marked by the line
``<!-- skip -->`` right before its fence (blank lines in between are allowed); its code is
still compiled, so a syntax error is caught.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
SKIP_MARK = "<!-- skip -->"
# Optional packages some pages use; without them (an install without the test extra) the page is skipped.
OPTIONAL = {"lightning", "timm", "torchvision", "pyautoattack", "tqdm"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


def code_blocks(text: str) -> list[tuple[int, str, str, bool]]:
    """``(line, language, code, skipped)`` of every fenced block of a Markdown text."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        language = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        body = []
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        skipped = k >= 0 and lines[k].strip() == SKIP_MARK
        blocks.append((i + 1, language, textwrap.dedent("\n".join(body)) + "\n", skipped))
        i = j + 1
    return blocks


def python_blocks(page: Path) -> list[tuple[int, str, bool]]:
    return [(line, code, skipped) for line, lang, code, skipped in code_blocks(page.read_text()) if lang == "python"]


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_fence_parser():
    text = "text\n\n```python\na = 1\n```\n\n<!-- skip -->\n\n```python\nb = 2\n```\n\n    ```bash\n    ls\n    ```\n"
    assert code_blocks(text) == [
        (3, "python", "a = 1\n", False),
        (9, "python", "b = 2\n", True),
        (13, "bash", "ls\n", False),
    ]


@pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode:UserWarning")
@pytest.mark.filterwarnings("ignore:.*LeafSpec")
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=_page_id)
def test_page_snippets_run(page: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)  # snippets that save files write them here
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the snippets' tensors are tiny: one thread is fastest
    namespace: dict[str, object] = {"__name__": f"docs_snippet_{page.stem.replace('-', '_')}"}
    try:
        for line, code, skipped in python_blocks(page):
            compiled = compile(code, f"{_page_id(page)}:{line}", "exec")
            if skipped:
                continue
            try:
                exec(compiled, namespace)
            except ModuleNotFoundError as error:
                if error.name is None or error.name.split(".")[0] not in OPTIONAL:
                    raise
                pytest.skip(f"{_page_id(page)}:{line} needs {error.name}")
    finally:
        torch.set_num_threads(threads)
