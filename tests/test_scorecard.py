"""book/scorecard.md: every figure and table of the paper has a row, and every number given as ours comes from
an executed chapter (so the scorecard cannot drift from the chapters).

The scorecard and the introduction are plain Markdown pages: they paste the chapters' results with MyST-NB's
cross-document glue role, ``{glue:text}`network.ipynb::key:s` ``, and the tests below check that each such
role names a chapter that glues that key.
"""
import ast
import json
import re
from ast import literal_eval
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SCORECARD = (BOOK / "scorecard.md").read_text()
PAGES = ("scorecard.md", "intro.md")           # the plain pages that quote the chapters' results

GLUE_MIME = "application/papermill.record/text/plain"
# {glue:text}`doc.ipynb::key:fmt` or {glue}`doc.ipynb::key`, and any other glue role (found to be refused)
_ROLE = re.compile(r"\{glue(?::(\w+))?\}`([^`]*)`")
# MyST-NB splits a {glue:text} target at its last colon first, so a cross-document target needs a format
# (`network.ipynb::key:s`); without one, `network.ipynb::key` is read as key "network.ipynb:", format "key".
_TEXT_TARGET = re.compile(r"(?P<doc>[\w./-]+\.ipynb)::(?P<key>\w+):(?P<fmt>[^:`]+)")
_ANY_TARGET = re.compile(r"(?P<doc>[\w./-]+\.ipynb)::(?P<key>\w+)")


def _code_cells(nb: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def _loop_values(tree: ast.AST) -> dict[str, set[str] | None]:
    """The values of loop variables that run over a literal list or tuple (``for kind in ("svm", "softmax")``,
    ``for key, name in [("lite", LITE), ...]``); None for a name that is also bound otherwise in a loop."""
    values: dict[str, set[str] | None] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.For, ast.comprehension)):
            continue
        names = [node.target] if isinstance(node.target, ast.Name) else getattr(node.target, "elts", [])
        for pos, name in enumerate(names):
            if not isinstance(name, ast.Name):
                continue
            found: set[str] | None = set()
            for elt in getattr(node.iter, "elts", None) or [None]:
                if not isinstance(node.target, ast.Name):
                    elt = elt.elts[pos] if isinstance(elt, ast.Tuple) and len(elt.elts) == len(names) else None
                if not isinstance(elt, ast.Constant):
                    found = None
                    break
                found.add(str(elt.value))
            if found is None or values.get(name.id, set()) is None:
                values[name.id] = None
            else:
                values[name.id] = values.get(name.id, set()) | found
    return values


def _glue_keys(nb: Path) -> tuple[set[str], list[re.Pattern]]:
    """The keys that the code cells of ``nb`` glue: literal keys, and f-string keys as patterns, with a loop
    variable over a literal sequence replaced by its values and anything else by a word
    (``glue(f"{name}_val_accuracy", ...)`` glues every ``<word>_val_accuracy``)."""
    literal, patterns = set(), []
    for source in _code_cells(nb):
        try:
            tree = ast.parse(source)
        except SyntaxError:                      # IPython syntax: fall back to the literal calls
            literal.update(re.findall(r"""\bglue\(\s*["'](\w+)["']""", source))
            continue
        loops = _loop_values(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "glue"):
                continue
            key = node.args[0]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                literal.add(key.value)
            elif isinstance(key, ast.JoinedStr):
                parts = []
                for part in key.values:
                    value = getattr(part, "value", None)
                    if isinstance(part, ast.Constant):
                        parts.append(re.escape(part.value))
                    elif isinstance(value, ast.Name) and loops.get(value.id):
                        parts.append("(?:" + "|".join(map(re.escape, sorted(loops[value.id]))) + ")")
                    elif (isinstance(value, ast.IfExp) and isinstance(value.body, ast.Constant)
                          and isinstance(value.orelse, ast.Constant)):
                        parts.append(f"(?:{re.escape(str(value.body.value))}|{re.escape(str(value.orelse.value))})")
                    else:
                        parts.append(r"\w+")
                patterns.append(re.compile("".join(parts)))
    return literal, patterns


def _glue_roles(page: str) -> list[tuple[str, str, str]]:
    """Every glue role of a page: (role, target, its line)."""
    text = (BOOK / page).read_text()
    return [(m.group(1) or "", m.group(2), text.count("\n", 0, m.start()) + 1) for m in _ROLE.finditer(text)]


@pytest.mark.parametrize("page", PAGES)
def test_every_glued_number_names_a_chapter_that_glues_it(page):
    found, problems = 0, []
    keys = {}
    for role, target, line in _glue_roles(page):
        where = f"{page}:{line} {{glue{':' + role if role else ''}}}`{target}`"
        if role == "text":
            m = _TEXT_TARGET.fullmatch(target)
        elif role == "":
            m = _ANY_TARGET.fullmatch(target)
        else:
            m = None
        if m is None:
            problems.append(f"{where}: a plain page can only paste from a notebook, as "
                            "{glue:text}`chapter.ipynb::key:s` (the format is needed)")
            continue
        nb = BOOK / m["doc"]
        if not nb.exists():
            problems.append(f"{where}: no notebook {m['doc']} in book/")
            continue
        literal, patterns = keys.setdefault(nb, _glue_keys(nb))
        if m["key"] not in literal and not any(p.fullmatch(m["key"]) for p in patterns):
            problems.append(f"{where}: {m['doc']} has no glue({m['key']!r}, ...) in a code cell")
        found += 1
    assert not problems, "\n".join(problems)
    if page == "scorecard.md":
        assert found > 100                       # the page's results are glued, not typed


def _chapter_text() -> str:
    """Every chapter's cell sources and outputs, glued values included (as the text they paste)."""
    parts = []
    for nb in sorted(BOOK.glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            parts.append("".join(cell["source"]))
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                parts.append("".join(out.get("text", "")) + "".join(data.get("text/plain", "")))
                if GLUE_MIME in data:
                    value = "".join(data[GLUE_MIME])
                    try:
                        value = str(literal_eval(value))          # a glued string is stored quoted
                    except (SyntaxError, ValueError):
                        pass
                    parts.append(value)
    return "\n".join(parts)


def _rows() -> list[list[str]]:
    """The list-table rows, each as its 5 fields (item, verdict, paper, ours, chapter). The page shows 3 columns
    so that the tables fit the page column: the first holds the item, then a "Verdict:" and a "Chapter:"
    paragraph; paper and ours follow."""
    rows, current = [], None
    for line in SCORECARD.splitlines():
        if line.startswith("* - "):
            current = [line[4:]]
            rows.append(current)
        elif line.startswith("  - ") and current is not None:
            current.append(line[4:])
        elif current is not None and line.startswith("    "):
            current[-1] += " " + line.strip()
    fields = []
    for r in rows:
        if r[0] in ("Figure", "Table"):
            continue
        if len(r) == 3 and " Verdict: " in r[0] and " Chapter: " in r[0]:
            item, rest = r[0].split(" Verdict: ", 1)
            verdict, chapter = rest.rsplit(" Chapter: ", 1)
            r = [item, verdict, r[1], r[2], chapter]
        fields.append(r)
    return fields


def test_the_tables_have_three_columns_to_fit_the_page():
    """Five columns were cut off at 1280 px (the chapter column behind a scroll bar): three fit."""
    assert SCORECARD.count(":widths: 24 34 42") == 2 and ":widths: 13 13 30 34 10" not in SCORECARD


def test_every_figure_and_table_has_a_row_with_a_verdict_and_a_chapter():
    rows = _rows()
    assert all(len(r) == 5 for r in rows), [r[0] for r in rows if len(r) != 5]
    items = [re.search(r"\*\*(Fig\.|Table) (\d+)\*\*", r[0]).groups() for r in rows]
    assert [n for kind, n in items if kind == "Fig."] == [str(i) for i in range(1, 10)]
    assert [n for kind, n in items if kind == "Table"] == [str(i) for i in range(1, 8)]
    for r in rows:
        assert re.search(r"reproduced|approximated", r[1]), r[0]
        for stem in re.findall(r"\{doc\}`(\w+)`", r[4]):
            assert (ROOT / "book" / f"{stem}.ipynb").exists() or (ROOT / "book" / f"{stem}.md").exists(), stem
    assert "TODO" not in SCORECARD


def test_our_typed_numbers_are_the_chapters_numbers():
    """What the 'ours' column still types (outside the glue roles) is stated by a chapter."""
    text = _chapter_text()
    missing = [(r[0][:40], num) for r in _rows() for num in re.findall(r"\d+\.\d+%?|\d+%", _ROLE.sub(" ", r[3]))
               if num not in text]
    assert not missing, f"numbers in the scorecard's 'ours' column that no chapter states: {missing}"
