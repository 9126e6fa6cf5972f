"""The built site's links: no broken internal link or anchor, and Colab/Binder buttons on every chapter.

`jupyter-book build -n` checks the cross-references Sphinx resolves; this checks what it cannot see: every
href and src in the HTML pages as a browser would follow it (relative paths, `#anchors`, images, scripts,
style sheets), and the launch buttons' targets against the notebooks in the repository. Needs the built site
(`make browser` builds it), not a browser.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
REPO = re.search(r"^repository:\s*\n\s+url:\s*https://github\.com/(\S+)", (ROOT / "_config.yml").read_text(),
                 re.M).group(1)


class _Links(HTMLParser):
    """Collects every element id and every href/src of one page."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append(attrs[key])


_parsed: dict[Path, _Links] = {}


def _parse(page: Path) -> _Links:
    if page not in _parsed:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        _parsed[page] = parser
    return _parsed[page]


def _site_pages() -> list[Path]:
    if not (SITE / "index.html").is_file():
        pytest.fail("the site is not built: run `make book` (or `make browser`, which builds it) first")
    # _static/ holds the themes' Jinja fragments (*-macros.html), copied as they are: not pages.
    return sorted(p for p in SITE.rglob("*.html") if p.relative_to(SITE).parts[0] != "_static")


def _broken_links(page: Path) -> list[str]:
    broken = []
    for link in _parse(page).links:
        parts = urlsplit(link)
        if parts.scheme or link.startswith("//") or not (parts.path or parts.fragment):
            continue                                # external, or an empty href ("" / "#")
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{link} (no file {target})")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
            broken.append(f"{link} (no element with id {parts.fragment!r} in {target.name})")
    return broken


def test_no_internal_link_or_anchor_is_broken():
    pages = _site_pages()
    assert len(pages) >= 12, f"only {len(pages)} pages built"
    broken = {str(p.relative_to(SITE)): b for p in pages if (b := _broken_links(p))}
    assert not broken, f"broken internal links: {broken}"


def test_the_link_checker_finds_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "a.html").write_text('<p id="here"><a href="b.html#nowhere">x</a> <a href="c.html">y</a>'
                                     '<a href="#here">z</a><img src="missing.png"></p>')
    (tmp_path / "b.html").write_text('<h1 id="somewhere">b</h1>')
    (tmp_path / "c.html").write_text("<p>c</p>")
    broken = _broken_links(tmp_path / "a.html")
    assert len(broken) == 2 and "nowhere" in broken[0] and "missing.png" in broken[1]


@pytest.mark.parametrize("notebook", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_chapter_has_colab_and_binder_buttons_to_its_own_notebook(notebook):
    page = SITE / "book" / f"{notebook.stem}.html"
    if not page.is_file():
        pytest.fail(f"{page} is not built (is the chapter in _toc.yml? run `make book`)")
    links = _parse(page).links
    path = notebook.relative_to(ROOT).as_posix()
    # The buttons open the Colab/Jupyter edition, on the branch scripts/publish_notebooks.sh writes.
    colab = f"https://colab.research.google.com/github/{REPO}/blob/notebooks/{path}"
    binder = f"https://mybinder.org/v2/gh/{REPO}/notebooks?urlpath=tree/{path}"
    assert colab in links, f"no Colab button to {path} on {page.name}"
    assert binder in links, f"no Binder button to {path} on {page.name}"
