"""The package's rooms (issue 17): data flow one way through zfviz's modules, and none reaches into another's
private names. Read from the source with ast, so the test sees function-level imports too."""
import ast
from pathlib import Path

import pytest

import zfviz

PACKAGE = Path(zfviz.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _main_block(node) -> bool:
    """``if __name__ == "__main__":`` -- a module run as a script may import what sits above it."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _walk(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _main_block(child))


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(zfviz modules that module ``name`` imports, private names it takes from other zfviz modules)."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    deps, private = set(), set()
    for node in _walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("zfviz")):
            module = (node.module or "").removeprefix("zfviz").lstrip(".")
            if module:
                deps.add(module.split(".")[0])
                private |= {f"{module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")}
            else:
                deps |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("zfviz.")}
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in MODULES
              and node.attr.startswith("_") and not node.attr.startswith("__")):
            private.add(f"{node.value.id}.{node.attr}")
    return deps - {name}, private


GRAPH = {name: _imports(name)[0] for name in MODULES}


def test_the_import_graph_has_no_cycle():
    order, state = [], {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import cycle: {' -> '.join(path + [name])}"
        state[name] = "open"
        for dep in sorted(GRAPH[name]):
            visit(dep, path + [name])
        state[name] = "done"
        order.append(name)

    for name in MODULES:
        visit(name, [])
    assert len(order) == len(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_no_module_takes_another_modules_private_names(name):
    assert _imports(name)[1] == set()


@pytest.mark.parametrize("low, high", [
    ("models", "checkpoints"),       # checkpoints rebuild models, not the other way round
    ("models", "pretrained"),        # the paper's architectures need no downloads or EfficientNet
    ("train", "deconv"),             # the Fig. 4 recorder is a callback (zfviz.evolution)
    ("train", "evolution"),
    ("train", "cli"),
    ("static", "widgets"),           # the static pages need no ipywidgets
    ("deconv", "occlusion"),
])
def test_data_flow_one_way(low, high):
    """``low`` sits below ``high``: it imports it neither directly nor through another module."""
    seen, todo = set(), [low]
    while todo:
        name = todo.pop()
        for dep in GRAPH.get(name, ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    assert high not in seen, f"zfviz.{low} depends on zfviz.{high}"


def test_every_module_names_its_chapter():
    for name in MODULES:
        doc = ast.get_docstring(ast.parse((PACKAGE / f"{name}.py").read_text())) or ""
        assert "chapter" in doc or name.startswith("_"), f"zfviz/{name}.py's docstring names no chapter"


def test_the_readme_lists_the_modules_in_an_order_data_flows_along():
    """README's table of modules: every zfviz module, each importing only modules listed above it."""
    import re
    readme = (PACKAGE.parent / "README.md").read_text()
    listed = re.findall(r"^\| `(\w+)\.py` \|", readme, flags=re.M)
    public = [m for m in MODULES if not m.startswith("_") and m != "features"]
    assert sorted(listed) == sorted(public)
    for i, name in enumerate(listed):
        later = set(listed[i + 1:]) & GRAPH[name]
        assert not later, f"README lists zfviz/{name}.py above {sorted(later)}, which it imports"
