"""scripts/book_cache.py: an edit to the package or the data empties the book's execution cache."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_cache", ROOT / "scripts" / "book_cache.py")
book_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_cache)


def _tree(tmp_path):
    (tmp_path / "zfviz").mkdir()
    (tmp_path / "zfviz" / "models.py").write_text("x = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "MANIFEST.tsv").write_text("weights/a.pt\t1\tabc\n")
    (tmp_path / "requirements-lock.txt").write_text("torch==2.14.1\n")
    return tmp_path


def _fill_cache(root):
    (root / "_build" / ".jupyter_cache").mkdir(parents=True, exist_ok=True)
    (root / "_build" / ".jupyter_cache" / "global.db").write_text("cached")


def test_cache_survives_unchanged_sources_and_is_emptied_by_an_edit(tmp_path):
    root = _tree(tmp_path)
    assert book_cache.refresh(root) is True                 # first build: no key stored yet
    _fill_cache(root)
    assert book_cache.refresh(root) is False and (root / "_build" / ".jupyter_cache" / "global.db").exists()
    (root / "zfviz" / "models.py").write_text("x = 2\n")   # an edit to the package
    assert book_cache.refresh(root) is True and not (root / "_build" / ".jupyter_cache").exists()
    _fill_cache(root)
    (root / "data" / "MANIFEST.tsv").write_text("weights/a.pt\t1\tdef\n")   # new data
    assert book_cache.refresh(root) is True and not (root / "_build" / ".jupyter_cache").exists()


def test_key_covers_names_and_contents(tmp_path):
    root = _tree(tmp_path)
    key = book_cache.source_key(root)
    (root / "zfviz" / "models.py").rename(root / "zfviz" / "train.py")    # same bytes, another file
    assert book_cache.source_key(root) != key
    assert book_cache.source_key(ROOT) == book_cache.source_key(ROOT)      # deterministic


def test_key_covers_the_package_data_and_not_its_bytecode(tmp_path):
    """An explorer's HTML template is package data: editing it changes the static pages, so the cache goes."""
    root = _tree(tmp_path)
    (root / "zfviz" / "explorers").mkdir()
    (root / "zfviz" / "explorers" / "page.html").write_text("<p>a</p>")
    key = book_cache.source_key(root)
    (root / "zfviz" / "__pycache__").mkdir()
    (root / "zfviz" / "__pycache__" / "models.cpython-311.pyc").write_bytes(b"\0")
    assert book_cache.source_key(root) == key                               # bytecode is not source
    (root / "zfviz" / "explorers" / "page.html").write_text("<p>b</p>")
    assert book_cache.source_key(root) != key
