/* The page "Your own picture" (book/your_image): the teaching ZFNet in the reader's browser, no kernel (issue 18).
 *
 * Needs, loaded before this file as classic scripts (a page opened from file:// may not fetch() or import()):
 *   vendor/onnxruntime-web/ort.wasm.min.js       global `ort` (onnxruntime-web 1.18.0, `make vendor`)
 *   vendor/onnxruntime-web/ort-wasm-simd.wasm.js window.ORT_WASM_SIMD_BASE64, its WebAssembly binary
 *   browser/zfnet_model.js                       window.ZFNET_MODEL_BASE64, zfviz.export's ONNX model (fp16 weights)
 *   browser/zfnet_meta.js                        window.ZFNET_META (scripts/browser_assets.py)
 *
 * The computations are the small pure functions of ZFBrowser (no DOM), so that tests can call them; what the page
 * computed is written, as JSON, to the hidden <pre id="zf-results">, and the root's data-state says where it is.
 */
(function () {
  "use strict";

  // ---- pure functions -------------------------------------------------------------------------------------

  /** Resize then centre crop, as zfviz.data.image_folder (torchvision Resize(short), CenterCrop(S)); an image of
   *  exactly S x S is the network's input already and is used as it is. Returns the resized size and the crop. */
  function resizePlan(width, height, short, size) {
    if (width === size && height === size) return { width: size, height: size, left: 0, top: 0, resized: false };
    let w, h;
    if (width <= height) { w = short; h = Math.floor(short * height / width); }
    else { h = short; w = Math.floor(short * width / height); }
    return { width: w, height: h, left: roundHalfEven((w - size) / 2), top: roundHalfEven((h - size) / 2), resized: true };
  }

  /** Python's round(): halves to even, as torchvision's CenterCrop offsets. */
  function roundHalfEven(v) {
    const r = Math.round(v);
    return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  /** RGBA bytes (S*S*4) -> the network's input, float32 (3, S, S): (pixel / 255 - mean image) / channel std. */
  function preprocess(rgba, size, mean, std) {
    const n = size * size, out = new Float32Array(3 * n);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < n; i++) out[c * n + i] = (rgba[4 * i + c] / 255 - mean[c * n + i]) / std[c];
    }
    return out;
  }

  /** Indices of the k largest values, largest first (first index on ties). */
  function topK(values, k) {
    const idx = Array.from(values, (_, i) => i);
    idx.sort((a, b) => (values[b] - values[a]) || (a - b));
    return idx.slice(0, k);
  }

  /** Flat argmax of values[offset .. offset + length), first on ties. */
  function argmax(values, offset, length) {
    let best = 0;
    for (let i = 1; i < length; i++) if (values[offset + i] > values[offset + best]) best = i;
    return best;
  }

  /** The strongest unit of map c of a (C, h, w) layer: {y, x, value} (zfviz: argmax, first on ties). */
  function strongestUnit(maps, shape, c) {
    const [, h, w] = shape, i = argmax(maps, c * h * w, h * w);
    return { y: Math.floor(i / w), x: i % w, value: maps[c * h * w + i] };
  }

  /** The map of a (C, h, w) layer whose strongest unit is largest (first on ties): the one the page shows first,
   *  as the chapters show each layer's strongest map for an image (a map of zeros would project to nothing). */
  function strongestMap(maps, shape) {
    const [C, h, w] = shape, n = h * w;
    let best = 0;
    for (let c = 1; c < C; c++) if (maps[c * n + argmax(maps, c * n, n)] > maps[best * n + argmax(maps, best * n, n)]) best = c;
    return best;
  }

  /** The image patch that unit (y, x) of a layer sees, as zfviz.deconv.receptive_field_box: [x0, y0, x1, y1],
   *  end-exclusive. steps: the layer's convs and pools, top first, [kernel, stride, padding, dilation]. */
  function receptiveFieldBox(steps, y, x, size, clip) {
    let y0 = y, y1 = y + 1, x0 = x, x1 = x + 1;
    for (const [k, s, p, d] of steps) {
      y0 = y0 * s - p; y1 = (y1 - 1) * s - p + d * (k - 1) + 1;
      x0 = x0 * s - p; x1 = (x1 - 1) * s - p + d * (k - 1) + 1;
    }
    if (clip === false) return [x0, y0, x1, y1];
    return [Math.max(x0, 0), Math.max(y0, 0), Math.min(x1, size), Math.min(y1, size)];
  }

  /** Crop a (C, S, S) projection to an unclipped box, as zfviz.deconv.field_crop (fill outside the image). */
  function fieldCrop(x, channels, size, box, fill) {
    const [x0, y0, x1, y1] = box, fh = y1 - y0, fw = x1 - x0, out = new Float32Array(channels * fh * fw).fill(fill);
    for (let c = 0; c < channels; c++) {
      for (let yy = Math.max(y0, 0); yy < Math.min(y1, size); yy++) {
        for (let xx = Math.max(x0, 0); xx < Math.min(x1, size); xx++) {
          out[c * fh * fw + (yy - y0) * fw + (xx - x0)] = x[c * size * size + yy * size + xx];
        }
      }
    }
    return { data: out, height: fh, width: fw };
  }

  /** torch.quantile (linear interpolation) of |values|. */
  function quantileAbs(values, q) {
    const a = Float64Array.from(values, Math.abs).sort(), pos = q * (a.length - 1), lo = Math.floor(pos);
    return lo + 1 < a.length ? a[lo] + (a[lo + 1] - a[lo]) * (pos - lo) : a[lo];
  }

  /** zfviz.plotting.stretch_symmetric: divide by the percentile of |values|, 0.5 + 0.5 * v, clipped to [0, 1]. */
  function stretchSymmetric(values, percentile) {
    const scale = Math.max(quantileAbs(values, (percentile === undefined ? 99.5 : percentile) / 100), 1e-12);
    return Float32Array.from(values, (v) => Math.min(1, Math.max(0, 0.5 + 0.5 * v / scale)));
  }

  /** Occluder positions as zfviz.occlusion.occlusion_grid: ny x nx top-left corners (i * stride, j * stride),
   *  coarse first: every 4th row and column, then every 2nd, then the rest (a preview that sharpens). */
  function occlusionOrder(size, square, stride) {
    const ny = Math.floor((size - square) / stride) + 1, nx = ny, order = [];
    const level = (i, j) => (i % 4 === 0 && j % 4 === 0 ? 0 : i % 2 === 0 && j % 2 === 0 ? 1 : 2);
    for (let l = 0; l < 3; l++) {
      for (let i = 0; i < ny; i++) for (let j = 0; j < nx; j++) if (level(i, j) === l) order.push([i, j]);
    }
    return { ny, nx, order };
  }

  /** The image (3, S, S) with a square of 0 (the mean image: the paper's grey square) at (y, x), into out. */
  function occlude(image, size, y, x, square, out) {
    out.set(image);
    for (let c = 0; c < 3; c++) {
      for (let yy = y; yy < y + square; yy++) out.fill(0, c * size * size + yy * size + x, c * size * size + yy * size + x + square);
    }
    return out;
  }

  /** A map's cell for the preview: its own value, else its nearest computed coarse neighbour's (NaN: none yet). */
  function previewValue(values, nx, i, j) {
    for (const step of [1, 2, 4]) {
      const v = values[(i - i % step) * nx + (j - j % step)];
      if (!Number.isNaN(v)) return v;
    }
    return NaN;
  }

  function decodeBase64(text) {
    const bin = atob(text), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // ---- the page -------------------------------------------------------------------------------------------

  const meta = window.ZFNET_META;
  let session = null, image = null, first = null, results = {}, queue = Promise.resolve(), latest = 0;

  async function getSession() {
    if (session) return session;
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = { "ort-wasm-simd.wasm": "data:application/wasm;base64," + window.ORT_WASM_SIMD_BASE64 };
    session = await ort.InferenceSession.create(decodeBase64(window.ZFNET_MODEL_BASE64), { executionProviders: ["wasm"] });
    return session;
  }

  /** Run images (N, 3, S, S) with `top` (layer, map) set (one-unit projection) or zeros; returns the outputs. */
  async function run(images, n, top) {
    const s = await getSession(), S = meta.input_size, feeds = { image: new ort.Tensor("float32", images, [n, 3, S, S]) };
    meta.map_shapes.forEach((shape, k) => {
      const data = new Float32Array(shape[0] * shape[1] * shape[2]);
      if (top && top.layer === k + 1) data[top.index] = top.value;
      feeds["top" + (k + 1)] = new ort.Tensor("float32", data, [1, ...shape]);
    });
    // One run at a time (a projection asked for while the occlusion map runs waits its turn).
    const done = queue.then(() => s.run(feeds));
    queue = done.catch(() => undefined);
    return done;
  }

  function el(id) { return document.getElementById(id); }

  function setState(state, message) {
    el("zf-root").dataset.state = state;
    if (message !== undefined) el("zf-status").textContent = message;
  }

  /** The network could not run: say so (the usual cause, a browser without WebAssembly SIMD), keep the details. */
  function failed(error) {
    results = { error: String(error) };
    publish();
    el("zf-run-occlusion").disabled = false;
    setState("error", "This browser could not run the network (it needs WebAssembly with SIMD: Chrome or Edge 91+, " +
             "Firefox 89+, Safari 16.4+). Details: " + String(error));
  }

  function publish() { el("zf-results").textContent = JSON.stringify(results); }

  function paint(canvas, rgb, channels, height, width) {
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(width, height), n = height * width;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) img.data[4 * i + c] = Math.round(255 * rgb[(channels === 3 ? c : 0) * n + i]);
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  async function loadFile(file) {
    const S = meta.input_size;
    results = {};
    publish();
    let bitmap;
    try {
      if (file.type && !file.type.startsWith("image/")) throw new Error("type " + file.type);
      bitmap = await createImageBitmap(file);
    } catch (e) {
      setState("error", `"${file.name}" is not an image this browser can read (PNG, JPEG, GIF, WebP...). Choose a picture file.`);
      results = { error: "not an image" };
      publish();
      return;
    }
    const t0 = performance.now();
    setState("busy", "Running the network...");
    const plan = resizePlan(bitmap.width, bitmap.height, meta.resize_short, S);
    const canvas = document.createElement("canvas");
    canvas.width = plan.width; canvas.height = plan.height;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, plan.width, plan.height);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, 0, 0, plan.width, plan.height);
    const rgba = ctx.getImageData(plan.left, plan.top, S, S).data;
    const view = el("zf-input");
    view.width = S; view.height = S;
    view.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), S, S), 0, 0);
    image = preprocess(rgba, S, meta.mean, meta.std);
    try {
      first = await run(image, 1, null);
    } catch (e) {
      failed(e);
      return;
    }
    const probs = first.probabilities.data, top = topK(probs, 5);
    el("zf-top5").innerHTML = top.map((k) => `<li>${meta.classes[k]}: ${(100 * probs[k]).toFixed(1)}%</li>`).join("");
    results = { resized: plan.resized, probabilities: Array.from(probs),
                top5: top.map((k) => ({ index: k, name: meta.classes[k], probability: probs[k] })) };
    results.first_result_ms = performance.now() - t0;
    publish();
    setState("ready", `Done in ${(results.first_result_ms / 1000).toFixed(2)} s.`);
    showStrongestMap();
    await updateProjection();
  }

  /** Point the map picker at the chosen layer's strongest map for the current picture. */
  function showStrongestMap() {
    if (!first) return;
    const layer = +el("zf-layer").value;
    el("zf-map").value = strongestMap(first["relu" + layer].data, meta.map_shapes[layer - 1]);
  }

  function updateMapPicker() {
    const layer = +el("zf-layer").value, picker = el("zf-map"), count = meta.map_shapes[layer - 1][0];
    picker.max = count - 1;
    if (+picker.value > count - 1) picker.value = count - 1;
    el("zf-map-count").textContent = `of 0-${count - 1}`;
  }

  async function updateProjection() {
    if (!first) return;
    const t0 = performance.now(), S = meta.input_size, request = ++latest, shown = first;
    const layer = +el("zf-layer").value, c = +el("zf-map").value, shape = meta.map_shapes[layer - 1];
    const unit = strongestUnit(first["relu" + layer].data, shape, c);
    const index = c * shape[1] * shape[2] + unit.y * shape[2] + unit.x;
    const out = await run(image, 1, { layer, index, value: unit.value });
    if (request !== latest || shown !== first) return;     // a later choice, or another picture, came meanwhile
    const proj = out.projection.data;
    const box = receptiveFieldBox(meta.geometry[layer - 1], unit.y, unit.x, S, false);
    const crop = fieldCrop(proj, 3, S, box, 0);
    paint(el("zf-projection"), stretchSymmetric(crop.data), 3, crop.height, crop.width);
    let sum = 0, abs = 0, best = 0;
    for (let i = 0; i < proj.length; i++) { sum += proj[i]; abs += Math.abs(proj[i]); if (Math.abs(proj[i]) > Math.abs(proj[best])) best = i; }
    const n = S * S;
    results.projection = { layer, map: c, unit: [unit.y, unit.x], activation: unit.value, box, sum, abs_sum: abs,
                           argmax_abs: [Math.floor(best / n), Math.floor((best % n) / S), best % S],
                           ms: performance.now() - t0 };
    el("zf-unit").textContent = unit.value > 0
      ? `Layer ${layer}, map ${c}: strongest unit at (${unit.y}, ${unit.x}), activation ${unit.value.toFixed(3)}; its receptive field ${box[2] - box[0]} px.`
      : `Layer ${layer}, map ${c} is zero everywhere for this picture: nothing to project (uniform grey).`;
    publish();
  }

  async function runOcclusion() {
    if (!first) return;
    const S = meta.input_size, square = +el("zf-size").value, stride = +el("zf-stride").value;
    const target = topK(first.probabilities.data, 1)[0], { ny, nx, order } = occlusionOrder(S, square, stride);
    const values = new Float32Array(ny * nx).fill(NaN), batch = 16, t0 = performance.now();
    const buffer = new Float32Array(batch * 3 * S * S), one = new Float32Array(3 * S * S);
    el("zf-run-occlusion").disabled = true;
    setState("busy");
    for (let start = 0; start < order.length; start += batch) {
      const part = order.slice(start, start + batch);
      part.forEach(([i, j], b) => buffer.set(occlude(image, S, i * stride, j * stride, square, one), b * 3 * S * S));
      const out = await run(buffer.subarray(0, part.length * 3 * S * S), part.length, null);
      const p = out.probabilities.data, K = meta.classes.length;
      part.forEach(([i, j], b) => { values[i * nx + j] = p[b * K + target]; });
      const shown = new Float32Array(ny * nx);
      for (let i = 0; i < ny; i++) for (let j = 0; j < nx; j++) shown[i * nx + j] = previewValue(values, nx, i, j);
      paint(el("zf-occlusion"), shown.map((v) => (Number.isNaN(v) ? 0.5 : v)), 1, ny, nx);
      el("zf-progress").value = (start + part.length) / order.length;
      el("zf-status").textContent = `Occlusion: ${start + part.length} of ${order.length} positions`;
      await new Promise((resolve) => setTimeout(resolve, 0));   // let the page paint the preview and the progress
    }
    results.occlusion = { size: square, stride, ny, nx, target, values: Array.from(values), ms: performance.now() - t0 };
    publish();
    el("zf-run-occlusion").disabled = false;
    setState("ready", `Occlusion map of "${meta.classes[target]}": ${ny} x ${nx} positions in ${(results.occlusion.ms / 1000).toFixed(1)} s.`);
  }

  function init() {
    if (!el("zf-root")) return;
    if (!meta || !window.ZFNET_MODEL_BASE64 || !window.ORT_WASM_SIMD_BASE64 || !window.ort) {
      setState("error", "The network's files are missing from this build of the site (run `make book`).");
      return;
    }
    meta.mean = new Float32Array(decodeBase64(meta.mean_base64).buffer);
    el("zf-file").addEventListener("change", (e) => e.target.files[0] && loadFile(e.target.files[0]).catch(failed));
    const drop = el("zf-drop");
    drop.addEventListener("dragover", (e) => e.preventDefault());
    drop.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) loadFile(e.dataTransfer.files[0]).catch(failed); });
    el("zf-layer").addEventListener("change", () => {
      updateMapPicker(); showStrongestMap(); updateProjection().catch(failed);
    });
    el("zf-map").addEventListener("change", () => updateProjection().catch(failed));
    el("zf-run-occlusion").addEventListener("click", () => runOcclusion().catch(failed));
    for (const id of ["zf-size", "zf-stride"]) {
      el(id).addEventListener("input", () => { el(id + "-value").textContent = el(id).value; });
    }
    updateMapPicker();
    setState("idle", "Choose a picture.");
  }

  window.ZFBrowser = { resizePlan, preprocess, topK, argmax, strongestUnit, strongestMap, receptiveFieldBox, fieldCrop,
                       quantileAbs, stretchSymmetric, occlusionOrder, occlude, previewValue, decodeBase64,
                       run, runOcclusion, updateProjection };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
