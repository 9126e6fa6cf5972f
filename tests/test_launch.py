"""The launch paths that cannot be exercised offline, checked for consistency instead.

Colab: each chapter's first code cell clones the repository named in _config.yml and installs
``zfviz[colab]``; everything the chapters import must then be installed (the package's own dependencies plus
the ``colab`` extra), or a Colab reader hits a ModuleNotFoundError halfway through a chapter.
Binder: environment.yml must install the same pinned torch as the lock file and extras that exist.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONFIG = (ROOT / "_config.yml").read_text()


def _repo_url() -> str:
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", CONFIG, re.M)
    assert match, "_config.yml has no repository url (the launch buttons are built from it)"
    return match.group(1)


def _requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")


def _code_cells(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _imported_top_modules(source: str) -> set[str]:
    # IPython magics and shell lines are not Python: drop them before parsing.
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tree = ast.parse("\n".join(lines))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_launch_buttons_are_configured_for_colab_and_binder():
    assert re.search(r"^\s+colab_url:\s*https://colab\.research\.google\.com\s*$", CONFIG, re.M)
    assert re.search(r"^\s+binderhub_url:\s*https://mybinder\.org\b", CONFIG, re.M)
    assert _repo_url().startswith("https://github.com/")
    # They open the Colab/Jupyter edition: the branch scripts/publish_notebooks.sh writes.
    branch = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+branch:\s*(\S+)", CONFIG, re.M)
    assert branch and branch.group(1) == "notebooks"
    assert 'branch=notebooks' in (ROOT / "scripts" / "publish_notebooks.sh").read_text()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_installs_zfviz_on_colab(chapter):
    first = _code_cells(chapter)[0]
    assert 'importlib.util.find_spec("zfviz") is None' in first, "the install guard must come first"
    assert '"google.colab" not in sys.modules' in first, "outside Colab the cell must not pip-install"
    url = _repo_url()
    clone = re.search(r'"git", "clone", "--depth", "1", "([^"]+)"', first)
    assert clone and clone.group(1) == url, f"the cell must clone {url} (the repository in _config.yml)"
    folder = url.rstrip("/").rsplit("/", 1)[1]
    assert f'"-e", "{folder}[colab]"' in first, "the cell must install zfviz with the colab extra"
    assert f'sys.path.insert(0, "{folder}")' in first


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    # top-level module -> the installed distributions providing it. It reads every installed distribution's
    # file list (the venv holds thousands of files): once per session, not once per code cell.
    return md.packages_distributions()


def _undeclared(source: str, extras=("colab",)) -> set[str]:
    """Third-party modules ``source`` imports that neither zfviz's dependencies nor the given extras install."""
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    for extra in extras:
        declared |= {_requirement_name(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]}
    dists = _module_distributions()
    # `google.colab` exists only on Colab, where the install guard looks for it.
    return {m for m in _imported_top_modules(source)
            if m not in sys.stdlib_module_names and m not in ("zfviz", "google")
            and not {d.lower().replace("_", "-") for d in dists.get(m, [])} & declared}


def test_every_module_the_chapters_import_is_installed_by_the_colab_extra():
    missing = {chapter.stem: found for chapter in CHAPTERS
               if (found := set().union(*map(_undeclared, _code_cells(chapter))))}
    assert not missing, f"imported by chapters but not installed by zfviz[colab]: {missing}"


def test_the_zfviz_package_imports_only_declared_dependencies():
    # An opt-in feature may import what its own extra installs (export.py: onnx, from zfviz[browser]); the
    # chapters may not (above: Colab installs the colab extra only).
    extras = tuple(PYPROJECT["project"]["optional-dependencies"])
    missing = {path.name: found for path in sorted((ROOT / "zfviz").glob("*.py"))
               if (found := _undeclared(path.read_text(), extras))}
    assert not missing, f"imported by zfviz but declared nowhere: {missing}"


def test_binder_environment_matches_the_lock_file_and_the_extras():
    env = (ROOT / "environment.yml").read_text()
    lock = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "requirements-lock.txt").read_text(), re.M))
    assert re.search(r"^\s+- python=3\.11\s*$", env, re.M)
    for name in ("torch", "torchvision"):
        pinned = re.search(rf"^\s+- {name}==(\S+)\s*$", env, re.M)
        assert pinned, f"environment.yml must pin {name}"
        assert pinned.group(1) == lock[name], f"{name}: environment.yml {pinned.group(1)}, lock {lock[name]}"
    book_range = next(r for r in PYPROJECT["project"]["optional-dependencies"]["book"]
                      if r.startswith("jupyter-book"))
    assert f"- {book_range}" in env, "Binder's jupyter-book range must be the book extra's"
    extras = re.search(r"^\s+- -e \.\[([a-z,]+)\]\s*$", env, re.M)
    assert extras, "environment.yml must install the repository itself (-e .[...])"
    assert set(extras.group(1).split(",")) <= set(PYPROJECT["project"]["optional-dependencies"])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_a_valid_notebook_with_cell_ids(chapter):
    """Colab, Binder and the build read the .ipynb as nbformat 4.5+: every cell needs a unique id."""
    import warnings

    import nbformat
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # nbformat only warns about a missing id, for now
        nb = nbformat.read(chapter, as_version=4)
        nbformat.validate(nb)
    ids = [cell.get("id") for cell in nb.cells]
    assert None not in ids and len(set(ids)) == len(ids)
