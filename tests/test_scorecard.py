"""book/scorecard.md: every figure and table of the paper has a row, and every number given as ours is one
that an executed chapter states (so the scorecard cannot drift from the chapters)."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCORECARD = (ROOT / "book" / "scorecard.md").read_text()


def _chapter_text() -> str:
    parts = []
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            parts.append("".join(cell["source"]))
            for out in cell.get("outputs", []):
                parts.append("".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _rows() -> list[list[str]]:
    """The list-table rows: each a list of its 5 columns (item, verdict, paper, ours, chapter)."""
    rows, current = [], None
    for line in SCORECARD.splitlines():
        if line.startswith("* - "):
            current = [line[4:]]
            rows.append(current)
        elif line.startswith("  - ") and current is not None:
            current.append(line[4:])
        elif current is not None and line.startswith("    "):
            current[-1] += " " + line.strip()
    return [r for r in rows if r[0] not in ("Figure", "Table")]


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


def test_our_numbers_are_the_chapters_numbers():
    text = _chapter_text()
    missing = [(r[0][:40], num) for r in _rows() for num in re.findall(r"\d+\.\d+%?|\d+%", r[3]) if num not in text]
    assert not missing, f"numbers in the scorecard's 'ours' column that no chapter states: {missing}"
