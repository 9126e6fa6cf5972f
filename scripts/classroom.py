"""The classroom edition: ``make classroom`` -> _build/classroom/<chapter>/{student,autograder}/.

Each chapter ends with exercises whose solutions sit on the same page. For a class, this script turns every
chapter into an Otter-Grader assignment (otter-grader, Berkeley's autograder; it also runs on Colab):

- the text is the Colab/Jupyter edition's (scripts/notebooks.py: no MyST, numbers written in);
- each exercise becomes an Otter question. Its solution (text and code) is removed from the student's
  notebook; the student gets the chapter's *answer cell* instead, with a ``grader.check`` after it that runs
  the exercise's public checks ("passed", or what is wrong, without the answer). The hidden checks are only
  in the autograder;
- the student's notebook works alone (on Colab, say): the install cell comes first and Otter's first cell
  carries the public checks (``carry_checks``);
- the answer cell and the checks live in the chapter itself, next to the exercise, hidden on the page (cell
  tags ``answer``, ``check`` and ``hidden-check`` with ``remove-cell``), so the book, the student's notebook and
  the grading cannot drift apart; the book's own run (nbval, on three CPU paths) executes the checks against
  the reference solution. An exercise with no answer cell is ungraded: the student gets its question and an
  empty cell for the answer, and the teacher's page says so.

Grading works without Docker: ``otter run`` grades one submission in the current environment (the teacher's
``make venv``); ``python scripts/classroom.py grade <chapter> <folder of submissions>`` runs it over a class
and writes a table of scores. See ``_build/classroom/README.md`` (written by ``make classroom``).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebooks", ROOT / "scripts" / "notebooks.py")
notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebooks)

EXERCISE_HEADING = re.compile(r"^## Exercise (\d+) \((.*)\)\s*$", re.M)
SOLUTION_HEADING = re.compile(r"^## Solution to ", re.M)
ANCHOR = re.compile(r"<a id='([\w-]+)'></a>")
POINTS_PER_CHECK = 1
INSTALL_MARK = 'importlib.util.find_spec("zfviz") is None'     # the chapters' install cell (scripts/notebooks.py)


@dataclass
class Exercise:
    """One exercise of a chapter, as the classroom edition hands it out."""
    label: str                       # e.g. deconvnet-ex1 (the book's label)
    number: int
    title: str
    prompt: nbformat.NotebookNode    # the question (Markdown)
    solution: list = field(default_factory=list)     # the solution's text and code cells
    answer: str | None = None        # the answer cell's code, None: ungraded
    checks: list = field(default_factory=list)       # public checks (code)
    hidden: list = field(default_factory=list)       # hidden checks (code)

    @property
    def name(self) -> str:
        """The Otter question name: the label with underscores (``grader.check("deconvnet_ex1")``)."""
        return self.label.replace("-", "_")

    @property
    def graded(self) -> bool:
        return self.answer is not None


def split(nb: nbformat.NotebookNode) -> tuple[list, list[Exercise]]:
    """A chapter of the classroom-mode edition -> (the cells before its exercises, its exercises)."""
    cells, exercises, body = nb.cells, [], []
    for cell in cells:
        heading = EXERCISE_HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if heading:
            anchor = ANCHOR.search(cell.source)
            if not anchor:
                raise ValueError(f"exercise {heading[1]} has no anchor (label): {cell.source[:80]!r}")
            exercises.append(Exercise(anchor[1], int(heading[1]), heading[2], cell))
            continue
        if not exercises:
            body.append(cell)
            continue
        ex, tags = exercises[-1], cell.metadata.get("tags", [])
        if "answer" in tags:
            if cell.cell_type != "raw" or ex.answer is not None:
                raise ValueError(f"{ex.label}: one answer cell, a raw cell, after the solution's code")
            ex.answer = cell.source
        elif "check" in tags:
            ex.checks.append(cell)
        elif "hidden-check" in tags:
            ex.hidden.append(cell)
        else:
            ex.solution.append(cell)
    for ex in exercises:
        if ex.graded and not (ex.checks and ex.hidden):
            raise ValueError(f"{ex.label}: a graded exercise needs public and hidden checks")
        if (ex.checks or ex.hidden) and not ex.graded:
            raise ValueError(f"{ex.label}: checks without an answer cell")
    return body, exercises


def _raw(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_raw_cell(text)


def _answer_code(ex: Exercise) -> str:
    """The solution's code inside Otter's markers: the student sees only the answer cell (the PROMPT)."""
    reference = "\n\n".join(c.source for c in ex.solution if c.cell_type == "code")
    prompt = ex.answer if ex.graded else "# Your code (this exercise is not graded)\n..."
    return ('""" # BEGIN PROMPT\n' + prompt + '\n""" # END PROMPT\n'
            "# BEGIN SOLUTION NO PROMPT\n" + reference + "\n# END SOLUTION")


def _question(ex: Exercise) -> list:
    checks = len(ex.checks) + len(ex.hidden)
    config = {"name": ex.name, "points": POINTS_PER_CHECK * checks} if ex.graded else \
             {"name": ex.name, "manual": True, "points": 0}
    text = "\n\n".join(c.source for c in ex.solution if c.cell_type == "markdown")
    # The solution's text becomes a cell for the student's own explanation (the "why" of the question).
    response = nbformat.v4.new_markdown_cell("_Your explanation (read by your teacher, not autograded): "
                                             "replace this text._")
    cells = [_raw("# BEGIN QUESTION\n" + yaml.safe_dump(config, sort_keys=False).strip()), ex.prompt,
             _raw("# BEGIN PROMPT"), response, _raw("# END PROMPT"),
             _raw("# BEGIN SOLUTION"), nbformat.v4.new_markdown_cell(text), nbformat.v4.new_code_cell(_answer_code(ex)),
             _raw("# END SOLUTION")]
    if ex.graded:
        cells += [_raw("# BEGIN TESTS")]
        cells += [nbformat.v4.new_code_cell(c.source) for c in ex.checks + ex.hidden]
        cells += [_raw("# END TESTS")]
    return cells + [_raw("# END QUESTION")]


def master(nb: nbformat.NotebookNode, chapter: str) -> nbformat.NotebookNode:
    """The Otter master notebook of one chapter (see Otter Assign's notebook format)."""
    body, exercises = split(nb)
    if not exercises:
        raise ValueError(f"{chapter} has no exercises")
    config = {"name": chapter, "init_cell": True, "check_all_cell": True, "export_cell": False,
              "run_tests": False, "solutions_pdf": False, "generate": True,
              "tests": {"files": True, "ok_format": False}}
    install = body[0]
    # Students also need Otter: the install cell installs the classroom extra beside the colab one.
    install.source = install.source.replace("[colab]", "[colab,classroom]")
    cells = [_raw("# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False).strip()), *body]
    for ex in exercises:
        cells += _question(ex)
    return nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)


@dataclass
class Assignment:
    chapter: str
    student: Path          # the student's notebook (with tests/ beside it)
    autograder: Path       # the autograder zip a teacher grades with
    exercises: list[Exercise]


def assign(chapter: str, edition_nb: Path, out: Path) -> Assignment:
    """Run ``otter assign`` on one chapter; its student and autograder folders go to ``out/<chapter>``."""
    nb = nbformat.read(edition_nb, as_version=4)
    _, exercises = split(nb)
    dest = out / chapter
    with tempfile.TemporaryDirectory(prefix="otter-") as work:
        source = Path(work) / f"{chapter}.ipynb"
        nbformat.write(master(nb, chapter), source)
        subprocess.run([str(Path(sys.executable).parent / "otter"), "assign", "--no-pdfs", str(source),
                        str(dest)], check=True, cwd=work, stdout=subprocess.DEVNULL)
    zips = sorted((dest / "autograder").glob(f"{chapter}-autograder_*.zip"))    # Otter stamps the time
    if len(zips) != 1:
        raise RuntimeError(f"otter assign wrote {len(zips)} autograder zips for {chapter}")
    zips[0].rename(dest / "autograder" / "autograder.zip")
    student = dest / "student" / f"{chapter}.ipynb"
    nb = carry_checks(nbformat.read(student, as_version=4), dest / "student" / "tests")
    nbformat.write(install_first(nb), student)
    return Assignment(chapter, dest / "student" / f"{chapter}.ipynb", dest / "autograder" / "autograder.zip",
                      exercises)


INIT = re.compile(r"^# Initialize Otter\nimport otter\ngrader = otter\.Notebook\((\"[\w-]+\.ipynb\")\)\s*$")


def carry_checks(nb: nbformat.NotebookNode, tests: Path) -> nbformat.NotebookNode:
    """The student's notebook with its public checks inside, so that it works alone (on Colab, say).

    Otter reads the checks from a ``tests/`` folder beside the notebook, which Colab does not have (and Otter's
    other ways, checks in the notebook's metadata or fetched from a URL, are refused on Colab or work only on
    JupyterLite). So Otter's first cell writes each public check to ``tests/`` where it is missing, then starts
    Otter. It never overwrites a file: a student's or the grader's copy stays as it is. Colab also keeps the
    notebook itself elsewhere (in Drive), and Otter reads the file it is given: it is given the notebook's name
    only where that file is beside it (the checks need only ``tests/``; the path is for exporting).
    """
    checks = {p.name: p.read_text() for p in sorted(tests.glob("*.py"))}
    if not checks:
        raise ValueError(f"no public checks in {tests}")
    cells = [c for c in nb.cells if c.cell_type == "code" and INIT.match(c.source)]
    if len(cells) != 1:
        raise ValueError(f"expected one Otter init cell, found {len(cells)}")
    name = INIT.match(cells[0].source)[1]
    cells[0].source = "\n".join([
        "# Initialize Otter. The public checks travel inside this notebook (Colab has no tests/ folder beside it):",
        "# each is written to tests/ unless a file of that name is already there.",
        "import os",
        "import otter",
        "_PUBLIC_CHECKS = {", *(f"    {file!r}: {text!r}," for file, text in checks.items()), "}",
        "os.makedirs(\"tests\", exist_ok=True)",
        "for _name, _text in _PUBLIC_CHECKS.items():",
        "    if not os.path.exists(os.path.join(\"tests\", _name)):",
        "        with open(os.path.join(\"tests\", _name), \"w\") as _f:",
        "            _f.write(_text)",
        f"grader = otter.Notebook({name} if os.path.isfile({name}) else None)"])
    return nb


def install_first(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The install cell before Otter's first cell: on Colab, Otter is installed by the install cell."""
    install = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and INSTALL_MARK in c.source]
    init = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith("# Initialize Otter")]
    if len(install) != 1 or len(init) != 1:
        raise ValueError(f"expected one install cell and one Otter init cell, found {len(install)} and {len(init)}")
    cell = nb.cells.pop(install[0])
    nb.cells.insert(min(install[0], init[0]), cell)
    return nb


def teacher_page(assignments: list[Assignment]) -> str:
    """The teacher's README: what is graded, how to hand out, collect and grade."""
    lines = ["# The ZFNet book, classroom edition", "",
             "Built by `make classroom` from the chapters (the exercises' answer cells and checks live in the",
             "chapters, next to each exercise). One assignment per chapter:", "",
             "| chapter | exercise | graded | points |", "|---|---|---|---|"]
    for a in sorted(assignments, key=lambda a: a.exercises[0].number):      # the book's order
        for ex in a.exercises:
            points = POINTS_PER_CHECK * (len(ex.checks) + len(ex.hidden)) if ex.graded else 0
            lines.append(f"| {a.chapter} | {ex.number} {ex.title} | "
                         f"{'yes: public check + hidden tests' if ex.graded else 'no: read the student’s answer'}"
                         f" | {points} |")
    lines += ["", "## Hand out", "",
              "Give each student the notebook `<chapter>/student/<chapter>.ipynb`. It is enough alone: its public",
              "checks travel inside it (its first Otter cell writes them to `tests/` beside it; the `tests/` folder",
              "next to it holds the same files, only the public checks). The student opens it in Jupyter, on a",
              "JupyterHub or on Colab (File > Upload notebook), runs the chapter, fills in each answer cell (the",
              "`...`) and runs the `grader.check(...)` cell below it: it says whether the answer passes the",
              "public check, or what is wrong. The install cell installs `zfviz` with Otter",
              "(`zfviz[colab,classroom]`) where they are missing (on Colab it fetches the book's repository).", "",
              "## Collect and grade (no Docker needed)", "",
              "Collect the students' `.ipynb` files of one chapter in a folder, then, in this repository after",
              "`make venv`:", "",
              "```bash",
              ".venv/bin/python scripts/classroom.py grade deconvnet submissions/   # -> submissions/scores.csv",
              "```", "",
              "It runs `otter run -a _build/classroom/<chapter>/autograder/autograder.zip <notebook>` for each",
              "submission (Otter's grading without containers: the notebook is executed in this environment,",
              "then every public and hidden test runs) and writes one row per student: the points per question",
              "and the total. Each chapter executes in about a minute on 2 CPU cores, so a class of 30 takes",
              "about half an hour per chapter. The solutions are in the book (and in",
              "`<chapter>/autograder/<chapter>.ipynb`). An ungraded exercise (marked above) still has its",
              "question, an answer cell and a cell for the explanation in the student's notebook; its",
              "solution is removed like the others, and its points are 0.", ""]
    return "\n".join(lines)


def build(out: Path, chapters: list[str] | None = None) -> list[Assignment]:
    """The whole classroom edition: one assignment per chapter with exercises, and the teacher's page."""
    out.mkdir(parents=True, exist_ok=True)
    assignments = []
    with tempfile.TemporaryDirectory(prefix="edition-") as work:
        for path in notebooks.build(Path(work), classroom=True):
            if chapters is None or path.stem in chapters:
                assignments.append(assign(path.stem, path, out))
    (out / "README.md").write_text(teacher_page(assignments))
    return assignments


def grade(chapter: str, submissions: Path, out: Path) -> Path:
    """Grade every ``*.ipynb`` in ``submissions`` with ``otter run``; returns the scores table (CSV)."""
    autograder = out / chapter / "autograder" / "autograder.zip"
    if not autograder.is_file():
        raise FileNotFoundError(f"{autograder} is missing: run `make classroom` first")
    files = sorted(p for p in submissions.glob("*.ipynb"))
    if not files:
        raise ValueError(f"no .ipynb submissions in {submissions}")
    rows = []
    for path in files:
        results = run_otter(autograder, path)
        rows.append({"submission": path.name, **{q: r["score"] for q, r in results.items()},
                     "total": sum(r["score"] for r in results.values()),
                     "possible": sum(r["possible"] for r in results.values())})
    table = submissions / "scores.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


def run_otter(autograder: Path, submission: Path) -> dict[str, dict]:
    """``otter run`` on one submission: {question: {"score": points, "possible": points}}."""
    with tempfile.TemporaryDirectory(prefix="otter-run-") as work:
        subprocess.run([str(Path(sys.executable).parent / "otter"), "run", "-a", str(autograder.resolve()),
                        "-o", work, "--no-logo", str(submission.resolve())], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = json.loads((Path(work) / "results.json").read_text())
    # Otter's results.json (Gradescope's format): one entry per question, plus one for the public tests.
    return {t["name"]: {"score": t["score"], "possible": t["max_score"]}
            for t in results["tests"] if "max_score" in t}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the classroom edition (make classroom)")
    b.add_argument("--out", type=Path, default=ROOT / "_build" / "classroom")
    b.add_argument("--chapter", action="append", help="only these chapters (default: all)")
    g = sub.add_parser("grade", help="grade a folder of submissions of one chapter")
    g.add_argument("chapter")
    g.add_argument("submissions", type=Path)
    g.add_argument("--out", type=Path, default=ROOT / "_build" / "classroom")
    args = parser.parse_args(argv)
    if args.command == "grade":
        print(grade(args.chapter, args.submissions, args.out))
        return
    if args.out.exists():
        shutil.rmtree(args.out)
    for a in build(args.out, args.chapter):
        graded = sum(ex.graded for ex in a.exercises)
        print(f"{a.chapter}: {len(a.exercises)} exercises, {graded} graded -> {a.student.relative_to(ROOT)}"
              if a.student.is_relative_to(ROOT) else a.student)


if __name__ == "__main__":
    main()
