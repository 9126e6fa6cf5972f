"""Every number the book's prose states about its own results is glued from a cell.

A number in the Markdown of a chapter, intro.md or scorecard.md passes when it lies in maths or code, is inside
a role (``{glue:text}`key` `` and the like), labels a figure, table, section, layer, year or citation, equals one
of the paper's constants in :mod:`zfviz.paper` (as the paper prints them), or is one of the few set-up constants
of :data:`SETUP` below, each kept with its reason. Anything else is a measured result typed by hand: the test
names it with its chapter and context, so that it can be computed in a cell and glued.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zfviz import paper

BOOK = Path(__file__).resolve().parents[1] / "book"

# Set-up constants of the book (not results): the value and why a number equal to it may be typed.
SETUP = {
    0: "zero (no, none)",
    1: "one (a single image, unit, step)",
    112: "the old teaching input size, named where the book compares it",
    192: "the teaching network's input size, a choice of the recipe (TrainConfig.input_size)",
    255: "the range of 8-bit pixels",
    10: "the clip-art set's 10 classes (the data set's design, zfviz.data)",
    0.25: "the teaching network's width (TrainConfig.width)",
    32: "the teaching recipe's batch size (TrainConfig.batch_size), named where the recipe is described",
    100: "percent (per cent of, 100%)",
}

# What is removed before numbers are looked for: code, maths, roles, links, labels, HTML, and phrases that
# name things by number (Fig. 4, §4.1, Table 2, layers 3 and 4, conv1, arXiv v3, years, citations).
_STRIP = [
    r"\$\$.*?\$\$", r"\$[^$\n]+\$",                      # maths
    r"`[^`]*`",                                          # inline code and role targets ({glue:text}`key`)
    r"\{[a-z:-]+\}",                                     # the role names themselves
    r"\]\([^)]*\)", r"<[^>]+>",                          # link targets and HTML tags
    r"^\([\w-]+\)=[ \t]*$", r"^:[\w-]+:[^\n]*$",               # labels, directive options
    r"\b(?:arXiv|doi|LNCS|ECCV|ILSVRC|ImageNet|AlexNet|ResNet|VGG|Lite)[\s:-]*[\w./-]*",
    r"\b(?:conv|pool|fc|norm|relu|layer|stage)\d\w*",    # module names: conv1, fc6, stage4
    r"\b\d+\s*[x×]\s*\d+(?:\s*[x×]\s*\d+)?\b",           # shapes: 7x7, 3 x 224 x 224 (the architecture's)
    r"\b(?:19[5-9]\d|20[0-3]\d)\b",                      # years
    r"\bCaltech-\d+", r"\b10\.\d{4,}/\S+",                # data set names, DOIs
    r"Lecture Notes in Computer Science \d+",
]
_LABELS = (r"(?:Figs?\.|Figures?|§|Sections?|Sec\.|Tables?|Chapters?|[Ll]ayers?|[Pp]anels?|[Ee]quations?|Eq\.|"
           r"[Ss]teps?|[Vv]ersions?|v|[Pp]ages?|pp\.|[Rr]ows?|[Cc]olumns?|[Cc]ells?|[Ee]xercises?|[Qq]uestions?)")
# A label is 1, 4.1, 6(b): never a decimal such as (0.44, which is a result that happens to follow "layers".
_LABEL_NO = r"\(?[1-9]\d*(?:\.[1-9]\d*)*[a-e]?\)?(?![\d.])"
_LABELLED = re.compile(_LABELS + r"[\s~-]*" + _LABEL_NO + r"(?:\s*(?:,|and|or|to|-|–|&)\s*" + _LABEL_NO + r")*")
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:\s*(?:million|billion))?%?(?![\w])")


_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*(.*?)[ \t]*$")
_CODE_DIRECTIVES = ("code", "code-block", "code-cell", "literalinclude", "math")


def _drop_code_fences(text: str) -> str:
    """Fenced code blocks out, prose directives' fence lines out, their bodies (prose) kept.

    A fence line opens a code block when it has no info string or a language (```python) or a code directive
    ({code-cell}), unless it closes the innermost open prose directive ({note}, {exercise}, ...)."""
    out, open_directives, code_fence = [], [], None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if code_fence is not None:                     # inside a code block: skip to its closing fence
            if m and m.group(1)[0] == code_fence[0] and len(m.group(1)) >= len(code_fence) and not m.group(2):
                code_fence = None
            continue
        if not m:
            out.append(line)
            continue
        fence, info = m.groups()
        if not info and open_directives and open_directives[-1] == fence:
            open_directives.pop()                      # the end of a prose directive
        elif info.startswith("{") and info[1:].split("}")[0] not in _CODE_DIRECTIVES:
            open_directives.append(fence)              # a prose directive: its body is scanned
        else:
            code_fence = fence                         # code: skipped
    return "\n".join(out)


def _markdown_sources() -> list[tuple[str, str]]:
    out = []
    for nb in sorted(BOOK.glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                out.append((f"{nb.name} cell {i}", "".join(cell["source"])))
    for md in ("intro.md", "scorecard.md"):
        out.append((md, (BOOK / md).read_text()))
    return out


def _value(token: str) -> float:
    t = token.replace(",", "").replace("−", "-").rstrip("%").strip()
    scale = 1.0
    for word, s in (("million", 1e6), ("billion", 1e9)):
        if t.endswith(word):
            t, scale = t[: -len(word)].strip(), s
    return float(t) * scale


def _known(value: float) -> bool:
    return any(abs(value - v) <= 1e-9 * max(1.0, abs(v)) for v in list(paper.values()) + list(SETUP))


def typed_numbers(text: str) -> list[tuple[str, str]]:
    """The numbers of ``text`` (Markdown) that are neither stripped nor known: (number, its context)."""
    text = _drop_code_fences(text)
    text = re.sub(r"\[([-−]?\d+),([-−]?\d+)\]", r"[\1, \2]", text)   # an interval [-128,128], not 128,128
    for pattern in _STRIP:
        text = re.sub(pattern, " ", text, flags=re.S | re.M)
    text = _LABELLED.sub(" ", text)
    found = []
    for m in _NUMBER.finditer(text):
        if not _known(_value(m.group())):
            found.append((m.group(), " ".join(text[max(0, m.start() - 50): m.end() + 30].split())))
    return found


def test_the_scanner_finds_typed_results_and_passes_glued_ones():
    text = ("The network reaches 47.2% on the test split {glue:text}`test_acc` and $x_1 = 3.5$; Fig. 4 and "
            "§4.1, layers 3 and 4 of conv5 in 2014; the paper's 38.4% top-1 error; `lr=0.03` in code.")
    assert [n for n, _ in typed_numbers(text)] == ["47.2%"]
    assert [n for n, _ in typed_numbers("trained for 3.7 million images")] == ["3.7 million"]
    assert [n for n, _ in typed_numbers("the distance at layers\n(0.442 against 0.31)")] == ["0.442", "0.31"]
    assert typed_numbers("Figs. 2 and 4, §4.1, Table 6(b), layers 3, 4 and 5") == []
    fenced = "```python\nx = 47.2\n```\n\n```{note}\nIt ran at 803 images/s.\n```\n"
    assert [n for n, _ in typed_numbers(fenced)] == ["803"]            # a note is prose, code is not
    tables = "```{list-table}\n* - 1.5\n```\n\n```{list-table}\n* - 2.7\n```\n"
    assert [n for n, _ in typed_numbers(tables)] == ["1.5", "2.7"]     # a closing fence opens nothing


@pytest.mark.parametrize("where, text", _markdown_sources(), ids=lambda v: v if len(v) < 40 else "")
def test_prose_states_no_unglued_result(where, text):
    typed = typed_numbers(text)
    assert not typed, (f"{where} types numbers that are not glued, not a zfviz.paper constant and not a set-up "
                       f"constant of tests/test_prose_numbers.py SETUP: " + "; ".join(f"{n!r} in '...{c}...'"
                                                                                     for n, c in typed))
