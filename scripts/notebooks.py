"""The Colab/Jupyter edition of the book: ``make notebooks`` -> _build/notebooks/book/<chapter>.ipynb.

Plain Jupyter and Colab render no MyST, so the chapters as they are show ```` ```{exercise} ````, roles and
glue as raw text there. sphinx-tojupyter (the tool QuantEcon builds its Colab notebooks with) renders each
chapter's MyST into Markdown that Jupyter displays: directives as headings, cross-references as links, glued
values written in. What it misses is done here, in ``finish``, and nothing more:

- it drops the outputs: they are copied back from the executed chapter, code cell by code cell (the code
  must be the same, or this stops), all but glue's records (no frontend displays them; the values are in
  the text);
- the install cell is tagged ``remove-cell`` in the book (the pages do not show it), so the tool drops it:
  here it comes first, as in the chapter;
- sphinx-exercise's headings come out as ``## (Title)Exercise 4`` and the solution's link to its exercise
  as ``Solution to[ Exercise 4 (Title)](#label)``: rewritten as on the page, with the anchor the link needs;
- links to other pages (``network.ipynb#...``, the bibliography) point at the published site (``html.baseurl``
  in _config.yml), since a notebook opened alone has no neighbours.

The edition is a build output, not committed to main: ``scripts/publish_notebooks.sh`` puts it on the
``notebooks`` branch, which the launch buttons open (``repository.branch`` in _config.yml).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "remove-cell"          # the install cell: the chapter's first code cell, hidden on the page
# Cells of the classroom edition, kept in the chapter next to their exercise and hidden on the page:
# the answer cell a student gets instead of the solution's code (a raw cell), and the public and hidden checks.
CLASSROOM_TAGS = ("answer", "check", "hidden-check")
EXERCISE = re.compile(r"^(#+)\s+\((.*)\)(Exercise \d+)\s*$", re.M)
SOLUTION = re.compile(r"^(#+) Solution to\[\s*(Exercise \d+.*?)\]\(#([\w-]+)\)\s*$", re.M)
LABEL = re.compile(r"```\{exercise\}.*?\n:label:\s*(\S+)", re.S)
PAGE_LINK = re.compile(r"\]\((?!https?:|#|mailto:)([\w-]+)\.ipynb(#[\w-]*)?\)")


def chapters(root: Path = ROOT) -> list[Path]:
    """The book's notebook chapters (the pages with launch buttons), in file-name order."""
    return sorted((root / "book").glob("*.ipynb"))


def baseurl(root: Path = ROOT) -> str:
    """The published site's address, from _config.yml (html.baseurl), ending with a slash."""
    url = (yaml.safe_load((root / "_config.yml").read_text()).get("html") or {}).get("baseurl")
    if not url or not url.startswith("https://"):
        raise ValueError("_config.yml needs html.baseurl (the published site, https://...): the edition's "
                         f"links to other pages point there; got {url!r}")
    return url.rstrip("/") + "/"


def tojupyter(root: Path, work: Path) -> Path:
    """Run sphinx-tojupyter over the book (stored outputs, no execution); returns the folder of notebooks."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"        # the chapters are stored executed
    config["sphinx"]["extra_extensions"] = config["sphinx"].get("extra_extensions", []) + ["sphinx_tojupyter"]
    # The site's own static files (the vendored MathJax, filled by `make vendor`) play no part in notebooks,
    # and a fresh clone does not have them: Sphinx would warn, and -W fail.
    for key in ("html_static_path", "mathjax_path"):
        config["sphinx"]["config"].pop(key, None)
    config["sphinx"]["config"].update({
        "tojupyter_lang_synonyms": ["ipython3"],   # MyST-NB's code cells are ipython3
        "tojupyter_drop_solutions": False,                               # the page shows them (drop-downs)
    })
    overlay = work / "_config.yml"
    overlay.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--config", str(overlay),
           "--builder", "custom", "--custom-builder", "jupyter", "--path-output", str(work), "-W", "-n", "--quiet"]
    subprocess.run(cmd, check=True)
    return work / "_build" / "jupyter" / "book"


def is_glue_record(output) -> bool:
    """An output of ``myst_nb.glue``: the value the page writes into its text (no frontend shows it)."""
    return bool(output.get("metadata", {}).get("scrapbook"))


def _exercise_labels(source: nbformat.NotebookNode) -> list[str]:
    return [label for c in source.cells if c.cell_type == "markdown" for label in LABEL.findall(c.source)]


def _markdown(text: str, url: str) -> str:
    text = SOLUTION.sub(lambda m: f"{m[1]} Solution to [{m[2]}](#{m[3]})", text)
    text = EXERCISE.sub(lambda m: f"{m[1]} {m[3]} ({m[2]})", text)
    return PAGE_LINK.sub(lambda m: f"]({url}book/{m[1]}.html{m[2] or ''})", text)


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def _is_classroom(cell) -> bool:
    return any(t in CLASSROOM_TAGS for t in _tags(cell))


def finish(generated: nbformat.NotebookNode, source: nbformat.NotebookNode, url: str,
           classroom: bool = False) -> nbformat.NotebookNode:
    """The tool's notebook made whole: outputs and install cell from ``source``, headings and links fixed.

    ``classroom=True`` also keeps the exercises' answer cells and checks (hidden on the page, see
    scripts/classroom.py), each after the solution code it follows in the chapter.
    """
    code = [c for c in source.cells if c.cell_type == "code"]
    if not code or INSTALL_TAG not in _tags(code[0]):
        raise ValueError(f"a chapter's first code cell must be its install cell, tagged {INSTALL_TAG!r}")
    install, kept = code[0], [c for c in code if INSTALL_TAG not in _tags(c)]   # the tool drops the rest
    made = [c for c in generated.cells if c.cell_type == "code"]
    if len(made) != len(kept):
        raise ValueError(f"sphinx-tojupyter wrote {len(made)} code cells, the chapter has {len(kept)}")
    following, last, kept_ids = {}, None, {c.id for c in kept}   # classroom cells, by the code cell before
    for c in source.cells:
        if c.cell_type == "code" and c.id in kept_ids:
            last = c.id
        elif _is_classroom(c) and classroom:
            following.setdefault(last, []).append(c)
    labels = iter(_exercise_labels(source))
    cells = [nbformat.v4.new_code_cell(install.source, metadata={"tags": ["install"]}, id="install")]
    code_cells = iter(kept)
    for i, cell in enumerate(generated.cells):
        if cell.cell_type == "code":
            original = next(code_cells)
            if cell.source.strip() != original.source.strip():
                raise ValueError(f"code cell {original.get('id')} differs after conversion:\n{cell.source[:200]}")
            outputs = [o for o in original.outputs if not is_glue_record(o)]
            cells.append(nbformat.v4.new_code_cell(original.source, id=original.id, outputs=outputs,
                                                   execution_count=original.execution_count,
                                                   metadata=dict(original.metadata)))
            cells += [nbformat.from_dict(dict(c)) for c in following.get(original.id, [])]
            continue
        text = cell.source
        if EXERCISE.search(text):                      # give the exercise the anchor its solution links to
            text = f"<a id='{next(labels)}'></a>\n\n" + text
        # The page shows a solution as a closed drop-down; JupyterLab shows a heading cell with this flag
        # folded, the solution's text and code hidden under it until the reader opens it.
        folded = {"jp-MarkdownHeadingCollapsed": True} if SOLUTION.search(text) else {}
        cells.append(nbformat.v4.new_markdown_cell(_markdown(text, url), id=f"md-{i:03d}", metadata=folded))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": source.metadata["kernelspec"],
        "language_info": source.metadata.get("language_info", {"name": "python"}),
        "colab": {"name": generated.metadata.get("filename", ""), "toc_visible": True}})
    nbformat.validate(nb)
    return nb


def build(out: Path, root: Path = ROOT, classroom: bool = False) -> list[Path]:
    """Write the edition to ``out/book/<chapter>.ipynb``; returns the paths written (see ``finish``)."""
    url = baseurl(root)
    written = []
    with tempfile.TemporaryDirectory(prefix="tojupyter-") as work:
        made = tojupyter(root, Path(work))
        (out / "book").mkdir(parents=True, exist_ok=True)
        for chapter in chapters(root):
            source = nbformat.read(chapter, as_version=4)
            generated = nbformat.read(made / chapter.name, as_version=4)
            path = out / "book" / chapter.name
            nbformat.write(finish(generated, source, url, classroom), path)
            written.append(path)
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "notebooks")
    args = parser.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    for path in build(args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
