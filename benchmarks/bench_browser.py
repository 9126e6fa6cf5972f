"""How fast and how big is the page "Your own picture" (book/your_image, issue 18) in headless Chromium?

    python benchmarks/bench_browser.py [--repeats 3] [--size 48] [--stride 8]

Needs the built site (`make book`) and Debian's chromium and chromium-driver. Opens the page from file:// (as a
reader who downloaded the site would) and prints, against the issue's budgets:

* the page's load time (the scripts parsed; the network's session starts with the first picture);
* the site size the page adds: onnxruntime-web (its script and its WebAssembly binary as base64), the model and
  its numbers (_static/browser/), the page's script and HTML, in MB (budget <= 30 MB);
* time to first result: from choosing a 192 x 192 validation picture to its top 5 on the page, the first time
  (the session starts then: the model is decoded and compiled) and again with the session started; what the page
  measures itself (``first_result_ms``) and what the test driver sees (budget <= 3 s);
* projection update: changing the feature map, median over the maps 0..9 of layer 5 (one forward pass and one
  deconvnet way down, the crop and the stretch; budget <= 200 ms);
* the occlusion map at --size/--stride (default 48/8: 19 x 19 = 361 positions, at most 400; budget <= 15 s).

The machine's load changes the times (the book's CI has 2 cores): the 1-minute load average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
PAGE = "book/your_image.html"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))


def site_bytes() -> dict:
    static = SITE / "_static"
    parts = {
        "onnxruntime-web": sorted((static / "vendor" / "onnxruntime-web").iterdir()),
        "model and numbers": sorted((static / "browser").iterdir()),
        "page (script, HTML)": [static / "your_image.js", SITE / PAGE],
    }
    return {name: sum(p.stat().st_size for p in files) for name, files in parts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="uploads timed (the first starts the session)")
    parser.add_argument("--size", type=int, default=48, help="the occluder's side in pixels")
    parser.add_argument("--stride", type=int, default=8, help="pixels between occluder positions")
    args = parser.parse_args(argv)
    if not (SITE / PAGE).is_file():
        sys.exit(f"{SITE / PAGE} is missing: run `make book` first")
    import torch
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from zfviz import data
    from browser_driver import start_chromium

    sizes = site_bytes()
    for name, n in sizes.items():
        print(f"site: {name:22s} {n / 1e6:6.2f} MB")
    total = sum(sizes.values()) / 1e6
    print(f"site: added by the page    {total:6.2f} MB   (budget 30 MB)")

    folder = Path(tempfile.mkdtemp(prefix="bench_browser_"))
    pictures = []
    for i in range(args.repeats):
        image = data.ClipArt("val")[i][0]
        path = folder / f"val{i}.png"
        Image.fromarray((image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()).save(path)
        pictures.append(path)

    driver = start_chromium()
    try:
        start = time.perf_counter()
        driver.get((SITE / PAGE).as_uri())
        WebDriverWait(driver, 120, poll_frequency=0.02).until(
            lambda d: d.find_element(By.ID, "zf-root").get_attribute("data-state") == "idle")
        print(f"page load (its {total:.0f} MB of scripts parsed, from file://): {time.perf_counter() - start:.2f} s")

        def results(key, timeout=120):
            def ready(d):
                text = d.find_element(By.ID, "zf-results").get_attribute("textContent")
                found = json.loads(text) if text else {}
                return found if key in found else False
            return WebDriverWait(driver, timeout, poll_frequency=0.02).until(ready)

        for i, path in enumerate(pictures):
            start = time.perf_counter()
            driver.find_element(By.ID, "zf-file").send_keys(str(path))
            found = results("top5")
            wall = time.perf_counter() - start
            label = "first (session starts)" if i == 0 else "session started"
            print(f"first result, {label:22s} page {found['first_result_ms'] / 1e3:5.2f} s, driver {wall:5.2f} s"
                  f"   (budget 3 s)")
            results("projection")

        times = []
        for channel in range(10):
            driver.execute_script("document.getElementById('zf-results').textContent = '{}';"
                                  "const m = document.getElementById('zf-map'); m.value = arguments[0];"
                                  "m.dispatchEvent(new Event('change'));", channel)
            times.append(results("projection")["projection"]["ms"])
        print(f"projection update, layer 5 maps 0-9: median {statistics.median(times):.0f} ms, "
              f"max {max(times):.0f} ms   (budget 200 ms)")

        driver.execute_script("document.getElementById('zf-size').value = arguments[0];"
                              "document.getElementById('zf-stride').value = arguments[1];"
                              "document.getElementById('zf-run-occlusion').click();", args.size, args.stride)
        occ = results("occlusion", timeout=600)["occlusion"]
        print(f"occlusion map, square {args.size} stride {args.stride}: {occ['ny']} x {occ['nx']} = "
              f"{occ['ny'] * occ['nx']} positions in {occ['ms'] / 1e3:.1f} s   (budget 15 s)")
    finally:
        driver.quit()
    print(f"load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
