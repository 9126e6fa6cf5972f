"""The page "Your own picture" (book/your_image, issue 18) in headless Chromium, against PyTorch.

The page runs the teaching ZFNet with onnxruntime-web on a picture the test uploads through its file input, from
file:// and from a local HTTP server, and writes what it computed to its hidden <pre id="zf-results">. The model it
runs stores its weights in float16 (scripts/browser_assets.py), so the reference is zfviz's PyTorch model with each
weight rounded to float16 the same way: then the probabilities agree to 1e-3 and the projections and occlusion map
to float32 rounding. A picture of exactly 192 x 192 pixels is used as it is (no resampling, so the comparison is
exact); the resize path (canvas drawImage is not PIL's resize) is checked apart, more loosely.
"""
from __future__ import annotations

import copy
import functools
import http.server
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
PAGE = "book/your_image.html"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from browser_driver import start_chromium  # noqa: E402
from test_site import KNOWN_UPSTREAM  # noqa: E402   (every Jupyter Book page logs these)
from zfviz import checkpoints, data, deconv, occlusion, plotting  # noqa: E402

PROB_ATOL = 1e-3


@pytest.fixture(scope="module")
def browser():
    if not (SITE / PAGE).is_file():
        pytest.fail(f"{PAGE} is not built: run `make book` first")
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def reference():
    """The teaching ZFNet with its weights rounded to float16 (what the page's model holds), its preprocess, and
    the model itself (float32)."""
    model, preprocess = checkpoints.load_teaching_zfnet()
    half = copy.deepcopy(model)
    with torch.no_grad():
        for p in half.parameters():
            p.copy_(p.half().float())
    return half.eval(), preprocess, model


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A validation image of the clip-art set as a 192 x 192 PNG, and its pixels as the page reads them."""
    from PIL import Image
    image = data.ClipArt("val")[0][0]
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    path = tmp_path_factory.mktemp("upload") / "val0.png"
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(path)
    return path, pixels.float() / 255


def _open(driver, url):
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "zf-root").get_attribute("data-state") == "idle")


def _results(driver, key, timeout=60):
    def ready(d):
        text = d.find_element(By.ID, "zf-results").get_attribute("textContent")
        found = json.loads(text) if text else {}
        return found if key in found else False
    return WebDriverWait(driver, timeout).until(ready)


def _upload(driver, path):
    driver.find_element(By.ID, "zf-file").send_keys(str(path))


def _url(kind, server):
    return (SITE / PAGE).as_uri() if kind == "file" else f"{server}/{PAGE}"


@pytest.mark.parametrize("kind", ["file", "http"])
def test_the_page_computes_what_pytorch_computes(browser, server, reference, picture, kind):
    model, preprocess, full = reference
    path, pixels = picture
    x = preprocess(pixels.unsqueeze(0))
    _open(browser, _url(kind, server))
    _upload(browser, path)
    found = _results(browser, "projection")
    assert found["resized"] is False
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert np.allclose(found["probabilities"], probs.numpy(), atol=PROB_ATOL), (found["probabilities"], probs)
    with torch.no_grad():    # float16 weights move the probabilities by < 1e-3 (64 validation images: 9.5e-4 at most)
        assert np.allclose(found["probabilities"], full(x).softmax(1)[0].numpy(), atol=2e-3)
    assert [t["index"] for t in found["top5"]] == probs.argsort(descending=True)[:5].tolist()
    assert found["top5"][0]["name"] == data.ClipArt("val").classes[int(probs.argmax())]

    # The projection shown first: layer 5's strongest map for this picture (first on ties, as torch's argmax;
    # the chapters show each layer's strongest map), then another layer and map chosen with the pickers.
    strongest = int(deconv.feature_map(model, x, 5)[0].amax(dim=(1, 2)).argmax())
    for layer, channel in ((5, strongest), (2, 7)):
        if layer != 5:
            browser.execute_script("document.getElementById('zf-results').textContent = '{}';")
            Select(browser.find_element(By.ID, "zf-layer")).select_by_visible_text(str(layer))
            box = browser.find_element(By.ID, "zf-map")
            browser.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'));",
                                   box, channel)
            found = _results(browser, "projection")
            for _ in range(40):          # the layer's change event projects map 0 first: wait for the map's
                if found["projection"]["map"] == channel:
                    break
                time.sleep(0.25)
                found = _results(browser, "projection")
        proj = found["projection"]
        assert (proj["layer"], proj["map"]) == (layer, channel)
        fmap = deconv.feature_map(model, x, layer)[0, channel]
        y, xx = divmod(int(fmap.flatten().argmax()), fmap.shape[1])
        assert proj["unit"] == [y, xx]
        assert proj["activation"] == pytest.approx(float(fmap[y, xx]), rel=1e-4, abs=1e-6)
        assert proj["activation"] > 0               # a live unit: its projection is a picture, not all zero
        ref = deconv.project(model, x, layer, channel, (y, xx))[0]
        assert proj["sum"] == pytest.approx(float(ref.sum()), rel=1e-3, abs=1e-4 * float(ref.abs().sum()))
        assert proj["abs_sum"] == pytest.approx(float(ref.abs().sum()), rel=1e-3)
        box = deconv.receptive_field_box(model, layer, (y, xx), 192, clip=False)
        assert proj["box"] == list(box)
        c, py, px = proj["argmax_abs"]
        assert abs(float(ref[c, py, px].abs()) - float(ref.abs().max())) <= 1e-3 * float(ref.abs().max())

    # Occlusion: a coarse map (5 x 5 positions), probability of the top class.
    browser.execute_script("""document.getElementById('zf-size').value = 48;
        document.getElementById('zf-stride').value = 32; document.getElementById('zf-run-occlusion').click();""")
    found = _results(browser, "occlusion", timeout=120)
    occ = found["occlusion"]
    target = int(probs.argmax())
    assert (occ["size"], occ["stride"], occ["target"], occ["ny"], occ["nx"]) == (48, 32, target, 5, 5)
    ref = occlusion.occlusion_map(model, x[0], target, 48, 32)
    assert np.allclose(np.array(occ["values"]).reshape(5, 5), ref.numpy(), atol=PROB_ATOL)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")
              and not any(known in e["message"] for known in (*KNOWN_UPSTREAM, "/favicon.ico"))]
    assert not errors


def test_a_picture_of_another_size_is_resized_and_cropped(browser, reference, picture, tmp_path):
    from PIL import Image
    model, preprocess, _ = reference
    _, pixels = picture
    big = Image.fromarray((pixels * 255).round().byte().permute(1, 2, 0).numpy()).resize((300, 260), Image.BICUBIC)
    path = tmp_path / "big.png"
    big.save(path)
    _open(browser, (SITE / PAGE).as_uri())
    _upload(browser, path)
    found = _results(browser, "probabilities")
    assert found["resized"] is True
    # PIL's resize (as zfviz.data.image_folder: short side 219, centre crop 192); the canvas resamples otherwise.
    short = big.resize((int(219 * 300 / 260), 219), Image.BILINEAR)
    left, top = round((short.width - 192) / 2), round((short.height - 192) / 2)
    crop = torch.from_numpy(np.array(short.crop((left, top, left + 192, top + 192)))).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        probs = model(preprocess(crop.unsqueeze(0))).softmax(1)[0]
    assert np.allclose(found["probabilities"], probs.numpy(), atol=0.1)
    margin = probs.sort(descending=True).values
    if margin[0] - margin[1] > 0.2:
        assert found["top5"][0]["index"] == int(probs.argmax())


def test_a_picture_dropped_on_the_box_is_read_as_an_uploaded_one(browser, reference, picture):
    """The drop zone: a file dropped on it (a real File in a DataTransfer, as a drag from the desktop gives) is
    classified exactly as the same file chosen with the input."""
    import base64
    model, preprocess, _ = reference
    path, pixels = picture
    _open(browser, (SITE / PAGE).as_uri())
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (ch) => ch.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        document.getElementById("zf-drop").dispatchEvent(
            new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));""",
                           base64.b64encode(path.read_bytes()).decode())
    found = _results(browser, "projection")
    with torch.no_grad():
        probs = model(preprocess(pixels.unsqueeze(0))).softmax(1)[0]
    assert found["resized"] is False
    assert np.allclose(found["probabilities"], probs.numpy(), atol=PROB_ATOL)


def test_a_file_that_is_not_an_image_gets_a_clear_message(browser, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture\n")
    _open(browser, (SITE / PAGE).as_uri())
    _upload(browser, path)
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.ID, "zf-root").get_attribute("data-state") == "error")
    assert "is not an image" in browser.find_element(By.ID, "zf-status").text


def test_the_pure_functions_match_zfviz(browser, reference):
    model, _, _ = reference
    _open(browser, (SITE / PAGE).as_uri())
    for layer, (y, x) in ((1, (0, 0)), (1, (50, 93)), (2, (10, 21)), (3, (0, 5)), (5, (5, 5)), (5, (10, 0))):
        for clip in (True, False):
            got = browser.execute_script(
                "return ZFBrowser.receptiveFieldBox(ZFNET_META.geometry[arguments[0] - 1], arguments[1], arguments[2],"
                " 192, arguments[3]);", layer, y, x, clip)
            assert got == list(deconv.receptive_field_box(model, layer, (y, x), 192, clip=clip)), (layer, y, x, clip)
    maps = torch.rand(4, 3, 5, generator=torch.Generator().manual_seed(1))
    maps[2, 1, 3] = maps[3, 0, 0] = 5.0                 # a tie: the first map wins, as torch's argmax
    got = browser.execute_script("return ZFBrowser.strongestMap(arguments[0], [4, 3, 5]);", maps.flatten().tolist())
    assert got == int(maps.amax(dim=(1, 2)).argmax()) == 2
    values = torch.randn(3, 9, 7, generator=torch.Generator().manual_seed(0))
    got = browser.execute_script("return Array.from(ZFBrowser.stretchSymmetric(arguments[0]));",
                                 values.flatten().tolist())
    assert np.allclose(got, plotting.stretch_symmetric(values).flatten().numpy(), atol=1e-6)
    for size, stride in ((48, 8), (48, 48), (16, 5), (192, 1)):
        ny, nx = browser.execute_script("const o = ZFBrowser.occlusionOrder(192, arguments[0], arguments[1]);"
                                        "return [o.ny, o.nx, o.order.length];", size, stride)[:2]
        assert (ny, nx) == occlusion.occlusion_grid(192, 192, size, stride)
    assert browser.execute_script("return ZFBrowser.resizePlan(300, 260, 219, 192);") == {
        "width": int(219 * 300 / 260), "height": 219, "left": round((int(219 * 300 / 260) - 192) / 2), "top": 14,
        "resized": True}


def test_a_browser_that_cannot_run_the_network_gets_a_clear_message(browser, picture):
    _open(browser, (SITE / PAGE).as_uri())
    browser.execute_script("ort.InferenceSession.create = () => Promise.reject(new Error('no WebAssembly SIMD'));")
    _upload(browser, picture[0])
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.ID, "zf-root").get_attribute("data-state") == "error")
    assert "could not run the network" in browser.find_element(By.ID, "zf-status").text
    assert "no WebAssembly SIMD" in _results(browser, "error")["error"]
