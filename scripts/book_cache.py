"""Key Jupyter Book's execution cache on the package and the data as well as the notebooks.

    python scripts/book_cache.py          # run by `make book` before `jupyter-book build`

Jupyter Book's cache (``execute_notebooks: cache``) re-runs a chapter only when the chapter's code cells
change; every chapter imports ``zfviz`` and reads ``data/``, so an edit there would leave stale outputs on
the pages. This script hashes every file of ``zfviz/`` (source and package data), ``data/MANIFEST.tsv`` (the sha256 of every data file) and
the lock file, and empties the cache (``_build/.jupyter_cache``) when the hash differs from the one stored
beside it by the previous build, so the next build executes every chapter again.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def source_key(root: Path = ROOT) -> str:
    """sha256 over the package (its source and its data files, e.g. the explorers' HTML), the data manifest
    and the lock file (names and contents)."""
    h = hashlib.sha256()
    package = sorted(f for f in (root / "zfviz").rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    files = package + [root / "data" / "MANIFEST.tsv", root / "requirements-lock.txt"]
    for f in files:
        if f.is_file():
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def refresh(root: Path = ROOT) -> bool:
    """Empty the execution cache if the source key changed; store the new key. Returns True if emptied."""
    build = root / "_build"
    cache, stamp = build / ".jupyter_cache", build / ".zfviz-source-key"
    key = source_key(root)
    changed = not stamp.is_file() or stamp.read_text().strip() != key
    if changed and cache.exists():
        shutil.rmtree(cache)
    build.mkdir(exist_ok=True)
    stamp.write_text(key + "\n")
    return changed


if __name__ == "__main__":
    emptied = refresh(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    print("zfviz or data/ changed: every chapter will be executed again" if emptied
          else "zfviz and data/ unchanged: chapters whose code is unchanged come from the cache")
