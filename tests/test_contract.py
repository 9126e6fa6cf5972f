"""What the book and readers rely on: chapter references in docstrings, and the shipped teaching ZFNet."""
import importlib
import inspect
import json
import pkgutil

import pytest

import zfviz
from zfviz import checkpoints, data, train

# Every public module of the package (the private ones, _checks and _occlusion_runner, name no chapter).
MODULES = [importlib.import_module(f"zfviz.{m.name}") for m in pkgutil.iter_modules(zfviz.__path__)
           if not m.name.startswith("_")]



def _public(module) -> list[str]:
    """``__all__``, or (zfviz.paper, a table of constants) every name defined there without an underscore."""
    return getattr(module, "__all__", None) or [
        n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_public_name_says_which_chapter_explains_it(module):
    missing = []
    for name in _public(module):
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        if "chapter" not in doc.lower() and "explained in" not in doc.lower():
            missing.append(name)
    assert not missing, f"{module.__name__}: docstrings without a chapter reference: {missing}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_chapters_named_in_docstrings_exist(module):
    # "(book/occlusion)" in a docstring must point at a page of the book, .ipynb or .md.
    import re
    from pathlib import Path
    book = Path(zfviz.__file__).resolve().parents[1] / "book"
    texts = [inspect.getdoc(module) or ""] + [inspect.getdoc(getattr(module, n)) or "" for n in _public(module)]
    stems = {m for t in texts for m in re.findall(r"\bbook/([a-z_]+)", t)}
    missing = [s for s in sorted(stems) if not any((book / f"{s}{ext}").exists() for ext in (".ipynb", ".md"))]
    assert not missing, f"{module.__name__}: docstrings name chapters the book lacks: {missing}"


@pytest.fixture(scope="module")
def record():
    return json.loads(data.data_path("weights/zfnet_teaching.json").read_text())


def test_teaching_record_says_how_it_was_made(record):
    assert record["command"].startswith("python -m zfviz.train")
    assert isinstance(record["seed"], int) and "cpu" in record["device"]
    assert 0 < record["wall_time_s"] <= 90 * 60           # issue 14's budget: 90 min on 2 CPU cores
    assert record["sha256"] == data._manifest(data.DATA_DIR)["weights/zfnet_teaching.pt"]
    assert len(record["history"]) == record["epochs"]


def test_teaching_zfnet_beats_three_times_chance_on_unseen_drawings(record):
    model, preprocess = zfviz.load_teaching_zfnet()
    assert model.config == {"arch": "zfnet", "num_classes": 10, "width": 0.25,
                            "input_size": checkpoints.upgrade_train_config(record["train_config"])["input_size"]}
    assert not model.training
    for split in ("val", "test"):
        ds = data.ClipArt(split)
        acc = train.evaluate(model, preprocess, *ds.tensors())["accuracy"]
        assert acc >= 3 / len(ds.classes)
        assert abs(acc - record[f"{split}_accuracy"]) <= 2 / len(ds)   # independent re-evaluation
