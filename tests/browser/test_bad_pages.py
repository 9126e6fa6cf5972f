"""Hostile text in a real browser: explorers whose class names are HTML, script end tags and line separators
(ImageFolder class names are directory names) still start, respond to input and show those names as text.

Needs no built site: it writes one standalone page, both explorers built from small random networks, into a
temporary folder and opens it via file://. Run alone with `pytest tests/browser/test_bad_pages.py` (chromium and
chromium-driver from apt, as for test_site.py).
"""
from __future__ import annotations


import pytest
import torch
from torch import nn

from zfviz import models
from zfviz.static import static_deconv_explorer, static_occlusion_explorer

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from browser_driver import start_chromium  # noqa: E402

HOSTILE = ["</script><script>window.pwned = 1</script>", "<!--<script>",
           "<img src=x onerror=\"window.pwned = 2\"> & &amp; \u2028 r\u00e9sum\u00e9 \U0001F98A"]


def _page() -> str:
    torch.manual_seed(0)
    deconv_net = models.init_kaiming_(models.zfnet(num_classes=3, width=0.1, input_size=112)).eval()
    images = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    dataset = [(images[k], k) for k in range(3)]               # one image of each class
    deconv_ex = static_deconv_explorer(deconv_net, None, dataset, [0, 1, 2], {1: [0, 1], 2: [0, 1]},
                                       classes=HOSTILE, name="deconv-evil")
    classifier = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                               nn.Linear(4, 3)).eval()
    pictures = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    occ_ex = static_occlusion_explorer(classifier, pictures, [0, 2], 8, 8, classes=HOSTILE, name="occ-evil")
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>hostile class names</title></head><body>'
            f'{deconv_ex.html}<p id="after-deconv">after</p>{occ_ex.html}<p id="after-occ">after</p></body></html>')


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    page = tmp_path_factory.mktemp("bad-pages") / "hostile.html"
    page.write_text(_page(), encoding="utf-8")
    driver = start_chromium()
    driver.get(page.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    try:                              # the explorers start once their pictures load; a broken page never does
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.zfviz-explorer')].every(e => e.dataset.view)"))
    except TimeoutException:
        pass                          # the tests below say what is wrong
    yield driver
    driver.quit()


def _text(driver, element) -> str:
    return driver.execute_script("return arguments[0].textContent", element)


def test_the_page_parses_whole_and_runs_no_injected_code(browser):
    assert browser.execute_script("return document.querySelectorAll('.zfviz-explorer').length") == 2
    started = browser.execute_script(
        "return [...document.querySelectorAll('.zfviz-explorer')].map(e => e.dataset.view)")
    assert all(started), f"explorers that did not start: {started}"
    assert browser.execute_script("return window.pwned") is None
    assert browser.execute_script("return document.querySelectorAll('script').length") == 4
    assert browser.execute_script("return document.querySelectorAll('b, img[src=x]').length") == 0
    for after in ("after-deconv", "after-occ"):                       # what follows each explorer is intact
        assert browser.find_element(By.ID, after).text == "after"
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"


def test_deconv_explorer_responds_and_shows_hostile_names_as_text(browser):
    root = browser.find_element(By.ID, "deconv-evil")
    options = [_text(browser, o) for o in root.find_elements(By.CSS_SELECTOR, ".image option")]
    assert options == [f"{k} ({name})" for k, name in enumerate(HOSTILE)]
    view, picture = root.get_attribute("data-view"), root.find_element(By.CLASS_NAME, "projection").get_attribute("src")
    assert view == "1,0,0" and HOSTILE[0] in _text(browser, root.find_element(By.CLASS_NAME, "caption"))
    Select(root.find_element(By.CLASS_NAME, "layer")).select_by_value("2")
    assert root.get_attribute("data-view") == "2,0,0"
    assert root.find_element(By.CLASS_NAME, "projection").get_attribute("src") != picture
    image = root.find_element(By.CLASS_NAME, "picture").get_attribute("src")
    Select(root.find_element(By.CLASS_NAME, "image")).select_by_index(2)
    assert root.get_attribute("data-view") == "2,0,2"
    assert root.find_element(By.CLASS_NAME, "picture").get_attribute("src") != image
    assert HOSTILE[2] in _text(browser, root.find_element(By.CLASS_NAME, "caption"))
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_occlusion_explorer_responds_and_shows_hostile_names_as_text(browser):
    root = browser.find_element(By.ID, "occ-evil")
    options = [_text(browser, o) for o in root.find_elements(By.CSS_SELECTOR, ".image option")]
    assert options == [f"0 ({HOSTILE[0]})", f"1 ({HOSTILE[2]})"]
    canvas = root.find_element(By.CLASS_NAME, "picture")
    pixels = browser.execute_script("return arguments[0].toDataURL()", canvas)
    caption = _text(browser, root.find_element(By.CLASS_NAME, "caption"))
    assert root.get_attribute("data-view") == "0,0,0" and f"P({HOSTILE[0]})" in caption, caption
    assert any(f"most probable: {name} (" in caption for name in HOSTILE), caption
    root.find_element(By.CLASS_NAME, "col").send_keys(Keys.RIGHT * 2)
    assert root.get_attribute("data-view") == "0,0,2"
    assert "square at pixel (0, 16)" in _text(browser, root.find_element(By.CLASS_NAME, "caption"))
    assert browser.execute_script("return arguments[0].toDataURL()", canvas) != pixels      # the square moved
    Select(root.find_element(By.CLASS_NAME, "image")).select_by_index(1)
    assert root.get_attribute("data-view").startswith("1,")
    assert f"P({HOSTILE[2]})" in _text(browser, root.find_element(By.CLASS_NAME, "caption"))
    assert browser.execute_script("return window.pwned") is None
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
