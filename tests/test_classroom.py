"""The classroom edition (scripts/classroom.py, `make classroom`): what a class gets and how it is graded.

- The student's notebooks hold no solution, text or code, and their tests/ only the public checks.
- Each student notebook carries its public checks (Colab has no tests/ folder beside it) and is executed once,
  alone in a folder, in a kernel, the way a student runs it; then, for every graded
  exercise: the answer cell as handed out makes its public check fail with a message (and the hidden tests
  fail); a plausible wrong answer (tests/classroom_wrong_answers.py) fails the hidden tests; the reference
  solution passes every public and hidden test.
- Those runs execute every code cell of the Colab/Jupyter edition too (the chapter's visible code), offline.
- The teacher's command (`otter run` over a folder, no Docker) gives the reference solution full marks and the
  notebook as handed out none.

Executing the chapters is the slow part (about the book's execution time), so these tests carry the
`classroom` mark and run in the native pass of `make test` only (the reference solutions meet the checks on
every CPU path already: the checks are cells of the chapters, which nbval executes three times).
"""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("classroom", ROOT / "scripts" / "classroom.py")
classroom = sys.modules["classroom"] = importlib.util.module_from_spec(spec)   # dataclasses look it up
spec.loader.exec_module(classroom)
sys.path.insert(0, str(Path(__file__).parent))
from classroom_wrong_answers import WRONG_ANSWERS  # noqa: E402

pytestmark = pytest.mark.classroom


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("classroom")
    return out, {a.chapter: a for a in classroom.build(out)}


def _graded(edition):
    return [(a, ex) for a in edition[1].values() for ex in a.exercises if ex.graded]


def test_every_chapter_is_an_assignment_and_the_teacher_page_lists_every_exercise(edition):
    out, assignments = edition
    chapters = sorted(p.stem for p in classroom.notebooks.chapters())
    assert sorted(assignments) == chapters
    page = (out / "README.md").read_text()
    for a in assignments.values():
        assert a.student.is_file() and a.autograder.is_file()
        for ex in a.exercises:
            assert f"| {a.chapter} | {ex.number} {ex.title} |" in page
    assert "scripts/classroom.py grade" in page and "otter run" in page
    assert len(_graded(edition)) >= 3, "at least the deconvnet chapter's exercises are graded"


def _solution_lines(ex) -> set[str]:
    """Lines of the reference solution that a student's notebook must not contain (not the answer cell's)."""
    given = {line.split("  #")[0].strip() for line in (ex.answer or "").splitlines()}   # code, not comments
    lines = set()
    for cell in ex.solution:
        for line in cell.source.splitlines():
            line = line.strip()
            if len(line) > 25 and line.split("  #")[0].strip() not in given and not line.startswith("#"):
                lines.add(line)
    return lines



def _assert_statements(source: str) -> set[str]:
    """Every assert statement of some Python source, as ``ast.unparse`` writes it (layout-independent); the
    asserts inside string literals too (Otter's test files hold their cases as strings)."""
    import ast
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Assert)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "assert" in node.value:
            doctest = "\n".join(line.strip()[4:] for line in node.value.splitlines()
                                if line.strip().startswith((">>> ", "... ")))
            found |= _assert_statements(doctest or node.value)
    return found


def test_the_student_edition_holds_no_solution_and_no_hidden_test(edition):
    out, assignments = edition
    for a in assignments.values():
        student = a.student.parent
        text = "\n".join(p.read_text() for p in [a.student, *sorted((student / "tests").glob("*.py"))])
        nb = nbformat.read(a.student, as_version=4)
        student_asserts = set().union(*(_assert_statements(c.source) for c in nb.cells if c.cell_type == "code"),
                                      *(_assert_statements(p.read_text()) for p in (student / "tests").glob("*.py")))
        sources = "\n".join(c.source for c in nb.cells)
        start = next(i for i, c in enumerate(nb.cells) if c.source.startswith("## Exercises"))
        # The chapter's own code may share a line with a solution; from the exercises on, nothing may.
        exercises_part = "\n".join(c.source for c in nb.cells[start:])
        for ex in a.exercises:
            solution = _solution_lines(ex)
            assert solution, f"{ex.label}: no solution lines to look for"
            leaked = [line for line in solution if line in exercises_part]
            assert not leaked, f"{ex.label}: solution lines in the student's notebook: {leaked[:3]}"
            for hidden in ex.hidden:
                # Whole assert statements, compared as code (ast.unparse): a formatter may break one over lines.
                asserts = _assert_statements(hidden.source)
                assert asserts and not asserts & student_asserts, f"{ex.label}: hidden test leaked"
            if ex.graded:
                assert f'grader.check("{ex.name}")' in sources
                assert (student / "tests" / f"{ex.name}.py").is_file()
        assert "'hidden': True" not in text
        assert "zfviz-book[colab,classroom]" in sources, "the install cell must install Otter (the classroom extra)"


def test_the_student_notebook_carries_its_public_checks_and_never_overwrites_a_file(edition, tmp_path,
                                                                                    monkeypatch):
    """On Colab there is no tests/ folder beside the notebook: Otter's first cell writes the public checks."""
    _, assignments = edition
    for a in assignments.values():
        nb = nbformat.read(a.student, as_version=4)
        init = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# Initialize Otter")]
        name = f'"{a.chapter}.ipynb"'
        assert len(init) == 1
        install = next(c for c in nb.cells if c.cell_type == "code" and classroom.INSTALL_MARK in c.source)
        assert nb.cells.index(install) < nb.cells.index(init[0]), "on Colab, Otter is there only after the install cell"
        assert init[0].source.rstrip().endswith(f"grader = otter.Notebook({name} if os.path.isfile({name}) else None)")
        folder = tmp_path / a.chapter
        (folder / "tests").mkdir(parents=True)
        handed_out = sorted((a.student.parent / "tests").glob("*.py"))
        kept = folder / "tests" / handed_out[0].name
        kept.write_text("# the student's own copy\n")
        monkeypatch.chdir(folder)
        exec(init[0].source, {})
        assert kept.read_text() == "# the student's own copy\n", "the init cell overwrote a file"
        written = sorted((folder / "tests").glob("*.py"))
        assert [p.name for p in written] == [p.name for p in handed_out]
        for p in handed_out[1:]:
            assert (folder / "tests" / p.name).read_text() == p.read_text()


class Kernel:
    """A Jupyter kernel that runs code as a notebook would, in the student's folder."""

    def __init__(self, cwd: Path):
        from jupyter_client.manager import start_new_kernel
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def run(self, code: str) -> str:
        out = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=600, allow_stdin=False)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{code[:200]}\n->\n{''.join(out)[-2000:]}")
        return "".join(out)

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


GRADE = """
import json as _json
_r = {grader}.check({name!r})
print(_json.dumps({{"cases": [[tcr.test_case.hidden, tcr.passed, tcr.message] for tcr in _r.test_case_results]}}))
"""


def _grade(kernel: Kernel, grader: str, name: str) -> list[tuple[bool, bool, str]]:
    out = kernel.run(GRADE.format(grader=grader, name=name))
    return [tuple(c) for c in json.loads(out.strip().splitlines()[-1])["cases"]]


@pytest.mark.parametrize("chapter", sorted({label.rsplit("-", 1)[0] for label in WRONG_ANSWERS}))
def test_checks_fail_as_handed_out_and_on_a_wrong_answer_and_pass_on_the_reference(edition, chapter, tmp_path):
    out, assignments = edition
    a = assignments[chapter]
    nb = nbformat.read(a.student, as_version=4)
    exercises = {ex.name: ex for ex in a.exercises if ex.graded}
    assert exercises and all(ex.label in WRONG_ANSWERS for ex in exercises.values()), \
        f"every graded exercise of {chapter} needs a wrong answer in tests/classroom_wrong_answers.py"
    first_answer = next(i for i, c in enumerate(nb.cells) if "otter_answer_cell" in c.metadata.get("tags", [])
                        and c.cell_type == "code")
    alone = tmp_path / "student"            # the notebook alone, as on Colab: no tests/ folder beside it
    alone.mkdir()
    shutil.copy(a.student, alone)
    kernel = Kernel(alone)
    ran = []                                 # the chapter's own code that runs here (not Otter's, not install)
    try:
        for cell in nb.cells[:first_answer]:
            if cell.cell_type == "code":
                kernel.run(cell.source)
                if not cell.source.startswith("# Initialize Otter") and classroom.INSTALL_MARK not in cell.source:
                    ran.append(cell.source)
        # The autograder's tests (public and hidden), run the way `otter run` runs them.
        kernel.run(f"import otter\n_auto = otter.Notebook({a.student.name!r}, "
                   f"tests_dir={str(a.autograder.parent / 'tests')!r})")
        answers = [c for c in nb.cells if c.cell_type == "code" and "otter_answer_cell" in c.metadata.get("tags", [])]
        for ex, answer in zip(exercises.values(), answers):
            assert "..." in answer.source
            kernel.run(answer.source)                                      # as handed out: runs, but is empty
            public = _grade(kernel, "grader", ex.name)
            assert public and not any(hidden for hidden, _, _ in public), "the student's tests hold hidden cases"
            assert not any(passed for _, passed, _ in public), f"{ex.label}: a public check passes an empty answer"
            assert all("Error" in message for _, _, message in public), f"{ex.label}: a check fails silently"
            assert not any(passed for _, passed, _ in _grade(kernel, "_auto", ex.name))

            kernel.run(WRONG_ANSWERS[ex.label])                            # a plausible mistake
            hidden = [passed for is_hidden, passed, _ in _grade(kernel, "_auto", ex.name) if is_hidden]
            assert hidden and not all(hidden), f"{ex.label}: the hidden tests pass a wrong answer"

            reference = "\n\n".join(c.source for c in ex.solution if c.cell_type == "code")
            kernel.run(reference)                                          # the book's solution
            ran.append(reference)
            results = _grade(kernel, "_auto", ex.name)
            assert all(passed for _, passed, _ in results), f"{ex.label}: the reference fails {results}"
            assert any(hidden for hidden, _, _ in results)
        # So every code cell of the Colab/Jupyter edition has run here, offline, in order: its code is the
        # chapter's visible code (tests/test_notebooks.py), the body above and each exercise's solution.
        chapter_nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
        visible = [c.source for c in chapter_nb.cells
                   if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", [])]
        assert "\n\n".join(ran) == "\n\n".join(visible), "the kernel did not run the edition's code"
    finally:
        kernel.close()


def test_the_teachers_command_grades_without_docker(edition, tmp_path):
    out, assignments = edition
    a = assignments["deconvnet"]
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(a.student, submissions / "as_handed_out.ipynb")
    shutil.copy(a.autograder.parent / f"{a.chapter}.ipynb", submissions / "reference.ipynb")   # the solutions
    table = classroom.grade("deconvnet", submissions, out)
    rows = {r["submission"]: r for r in csv.DictReader(table.open())}
    possible = float(rows["reference.ipynb"]["possible"])
    assert possible == sum(classroom.POINTS_PER_CHECK * (len(ex.checks) + len(ex.hidden))
                           for ex in a.exercises if ex.graded)
    assert float(rows["reference.ipynb"]["total"]) == possible
    assert float(rows["as_handed_out.ipynb"]["total"]) == 0
