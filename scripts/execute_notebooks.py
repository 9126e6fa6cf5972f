"""Execute the book's notebooks in place (stored outputs are what nbval compares) and print their times.

    python scripts/execute_notebooks.py               # every book/*.ipynb
    python scripts/execute_notebooks.py book/network.ipynb

Each chapter must execute in at most 90 s on 2 CPU cores; the slowest come first in the report.
"""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 90


def main(paths):
    paths = [Path(p) for p in paths] or sorted((ROOT / "book").glob("*.ipynb"))
    times = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.time()
        NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        times[path.name] = time.time() - start
        nbformat.write(nb, path)
        print(f"{path.name}: {times[path.name]:.1f} s", flush=True)
    print("\nslowest first:")
    for name, t in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {t:6.1f} s  {name}{'   OVER THE 90 s BUDGET' if t > LIMIT_S else ''}")
    return 1 if any(t > LIMIT_S for t in times.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
