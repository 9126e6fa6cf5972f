"""The Colab/Jupyter edition (scripts/notebooks.py, `make notebooks`): what a Colab reader opens.

Every chapter is converted once (sphinx-tojupyter over the whole book, about 10 s); the tests then read the
edition the way Jupyter and Colab do: Markdown with no MyST in it, the glued numbers written in, the code and
outputs of the chapter, the install cell first, exercises and solutions as on the page.
"""
from __future__ import annotations

import ast
import collections
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("notebooks", ROOT / "scripts" / "notebooks.py")
notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebooks)

CHAPTERS = notebooks.chapters()
# MyST that Jupyter and Colab would show as text: roles, directive fences and their options, targets.
RAW_MYST = re.compile(r"\{[a-z][\w:-]*\}`|^\s*(```+|:::+)\s*\{|^:(label|class|name|width|align|alt):|^\([\w-]+\)=\s*$",
                      re.M)
GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`([^`]+)`")


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("edition")
    paths = notebooks.build(out)
    return {p.stem: nbformat.read(p, as_version=4) for p in paths}


def _source(chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)


def _markdown(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _plain(text: str) -> str:
    """Undo Sphinx's smart quotes (the page shows them too): \u2026 -> ..., curly quotes -> straight."""
    return text.translate(str.maketrans({"\u2026": "...", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}))


def _glued_values(nb) -> dict[str, str]:
    """What the page writes for ``{glue:text}`key```: the value's text, without the repr's quotes."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if notebooks.is_glue_record(out):
                text = out["data"]["application/papermill.record/text/plain"]
                values[out["metadata"]["scrapbook"]["name"]] = ast.literal_eval(text) if text[:1] in "'\"" else text
    return values


def test_every_chapter_is_converted(edition):
    assert sorted(edition) == sorted(p.stem for p in CHAPTERS) and len(edition) >= 9


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_no_raw_myst_is_left(edition, chapter):
    source_hits = RAW_MYST.findall(_markdown(_source(chapter)))
    assert source_hits, "the check must see MyST in the chapter itself, or it tests nothing"
    text = _markdown(edition[chapter])
    left = [m.group(0) for m in RAW_MYST.finditer(text)]
    assert not left, f"{chapter}: MyST a Colab reader would see as text: {left[:5]}"
    assert "Unresolved glue" not in text and "{glue" not in text


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_every_glued_number_is_written_in(edition, chapter):
    source = _source(chapter)
    values = _glued_values(source)
    uses = collections.Counter(values[key] for key in GLUE_ROLE.findall(_markdown(source)))
    assert uses, f"{chapter} glues no number into its prose"
    text = _plain(_markdown(edition[chapter]))
    missing = {v: n for v, n in uses.items() if text.count(v) < n}
    assert not missing, f"{chapter}: glued values missing from the edition (value: times used): {missing}"


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_code_and_outputs_are_the_chapters_with_the_install_cell_first(edition, chapter):
    source, made = _source(chapter), edition[chapter]
    install = [c for c in source.cells if c.cell_type == "code"][:1]
    code = [c for c in source.cells if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", [])]
    made_code = [c for c in made.cells if c.cell_type == "code"]
    assert made.cells[0].cell_type == "code" and made.cells[0].source == install[0].source
    assert 'importlib.util.find_spec("zfviz") is None' in made.cells[0].source
    assert [c.source for c in made_code[1:]] == [c.source for c in code]
    for mine, theirs in zip(made_code[1:], code):
        kept = [o for o in theirs.outputs if not notebooks.is_glue_record(o)]
        assert mine.outputs == kept
    pictures = sum("image/png" in o.get("data", {}) for c in made_code for o in c.outputs)
    assert pictures == sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    nbformat.validate(made)
    ids = [c.id for c in made.cells]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_exercises_and_solutions_read_as_on_the_page(edition, chapter):
    source, text = _source(chapter), _plain(_markdown(edition[chapter]))
    labels = notebooks._exercise_labels(source)
    titles = re.findall(r"```\{exercise\}\s*(.*)", _markdown(source))
    exercises = re.findall(r"^## Exercise (\d+) \((.*)\)$", text, re.M)
    assert [t for _, t in exercises] == [t.strip() for t in titles] and len(labels) == len(titles) >= 1
    solutions = re.findall(r"^## Solution to \[Exercise (\d+) \((.*)\)\]\(#([\w-]+)\)$", text, re.M)
    for number, title, label in solutions:
        assert (number, title) in exercises
        assert f"<a id='{label}'></a>" in text, f"the solution links to #{label}, which is not in the notebook"
    assert len(solutions) == len(exercises)
    folded = [c for c in edition[chapter].cells if c.metadata.get("jp-MarkdownHeadingCollapsed")]
    assert len(folded) == len(solutions) and all(c.source.startswith("## Solution to") for c in folded)


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_links_lead_to_the_published_pages_or_within_the_notebook(edition, chapter):
    text = _markdown(edition[chapter])
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    anchors = set(re.findall(r"<a id='([\w-]+)'></a>", text))
    base = notebooks.baseurl()
    for target in targets:
        if target.startswith("#"):
            assert target[1:] in anchors, f"{chapter}: link to missing anchor {target}"
        else:
            assert target.startswith(("https://", "http://")), f"{chapter}: relative link {target}"
            assert not target.endswith(".ipynb")
    assert any(t.startswith(base + "book/") for t in targets), "no link to another page of the book"


def test_finish_refuses_code_that_changed_in_conversion():
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("install()", metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_code_cell("x = 1")], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("x = 1")])
    nb = notebooks.finish(good, source, "https://example.org/")
    assert [c.source for c in nb.cells] == ["install()", "# T", "x = 1"]
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 2")])
    with pytest.raises(ValueError, match="differs after conversion"):
        notebooks.finish(bad, source, "https://example.org/")
    with pytest.raises(ValueError, match="wrote 0 code cells"):
        notebooks.finish(nbformat.v4.new_notebook(), source, "https://example.org/")


def test_publish_puts_the_edition_on_the_branch_the_buttons_open(edition, tmp_path):
    """scripts/publish_notebooks.sh, in a clone: one commit on HEAD that replaces exactly the chapters."""
    import shutil
    import subprocess
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)], check=True)
    (clone / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "publish_notebooks.sh", clone / "scripts")     # the script as it is now
    built = clone / "_build" / "notebooks" / "book"
    built.mkdir(parents=True)
    for chapter, nb in edition.items():
        nbformat.write(nb, built / f"{chapter}.ipynb")
    subprocess.run(["bash", str(clone / "scripts" / "publish_notebooks.sh")], cwd=clone, check=True,
                   stdout=subprocess.DEVNULL)
    git = lambda *args: subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True,
                                       text=True).stdout
    assert git("rev-parse", "notebooks~1").strip() == git("rev-parse", "HEAD").strip()
    changed = set(git("diff", "--name-only", "HEAD", "notebooks").split())
    assert changed == {f"book/{chapter}.ipynb" for chapter in edition}
    published = nbformat.reads(git("show", "notebooks:book/deconvnet.ipynb"), as_version=4)
    assert published.cells[0].id == "install" and published == edition["deconvnet"]
    assert git("show", "notebooks:environment.yml")             # Binder builds from the branch
    shutil.rmtree(clone)
