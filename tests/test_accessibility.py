"""Every figure of the book has alt text and a caption, and no chapter uses a colour map that is unreadable
for colour-blind readers (jet, rainbow and the like)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
UNSAFE_MAPS = ("jet", "rainbow", "gist_rainbow", "hsv", "nipy_spectral", "gist_ncar", "turbo")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_has_alt_text_and_a_caption(chapter):
    missing = []
    for cell in json.loads(chapter.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        if any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            meta = cell["metadata"].get("mystnb", {})
            alt = meta.get("image", {}).get("alt", "")
            caption = meta.get("figure", {}).get("caption", "")
            if len(alt) < 30 or len(caption) < 20:         # a sentence each, not a placeholder
                missing.append("".join(cell["source"])[:60])
    assert not missing, f"{chapter.name}: figures without alt text or caption: {missing}"


def test_no_colour_blind_unsafe_colour_maps():
    sources = [(p.name, "".join(c["source"])) for p in CHAPTERS for c in json.loads(p.read_text())["cells"]
               if c["cell_type"] == "code"]
    sources += [(p.name, p.read_text()) for p in sorted((ROOT / "zfviz").glob("*.py"))]
    pattern = re.compile(r"""(?:cmap\s*=\s*|colormaps\[|cm\.)["']?(%s)\b""" % "|".join(UNSAFE_MAPS))
    found = [(name, m.group(1)) for name, text in sources for m in pattern.finditer(text)]
    assert not found, f"colour maps that colour-blind readers cannot read: {found} (use viridis, cividis, RdBu)"
