const q = s => root.querySelector(s);
const image = q(".image"), row = q(".row"), col = q(".col"), canvas = q(".picture"), ctx = canvas.getContext("2d");
const patch = new Image(); patch.src = D.patch;
const pictures = D.images.map(im => { const p = new Image(); p.src = im.u; return p; });
D.images.forEach((im, n) => { const o = document.createElement("option"); o.value = n;
  o.textContent = n + " (" + im.target + ")"; image.appendChild(o); });
function setGrid() { const im = D.images[image.value]; row.max = im.ny - 1; col.max = im.nx - 1;
  q(".map").src = im.map; }
function show() {
  const im = D.images[image.value], i = +row.value, j = +col.value, k = i * im.nx + j;
  const y = i * D.stride, x = j * D.stride;
  ctx.drawImage(pictures[image.value], 0, 0);
  ctx.drawImage(patch, x, y, D.size, D.size, x, y, D.size, D.size);
  ctx.strokeStyle = "#FFB000"; ctx.lineWidth = 1; ctx.strokeRect(x + 0.5, y + 0.5, D.size - 1, D.size - 1);
  const b = q(".box");
  b.style.top = 100 * i / im.ny + "%"; b.style.left = 100 * j / im.nx + "%";
  b.style.height = 100 / im.ny + "%"; b.style.width = 100 / im.nx + "%";
  q(".caption").textContent = "square at pixel (" + y + ", " + x + "): P(" + im.target + ") = " +
    im.prob[k].toFixed(3) + " (" + im.whole.toFixed(3) + " without the square); most probable: " +
    D.classes[im.top[k]] + " (" + im.topp[k].toFixed(3) + ")";
  root.dataset.view = image.value + "," + i + "," + j;
}
canvas.addEventListener("click", e => { const r = canvas.getBoundingClientRect(), im = D.images[image.value];
  const px = (e.clientX - r.left) / r.width * D.width - D.size / 2;
  const py = (e.clientY - r.top) / r.height * D.height - D.size / 2;
  col.value = Math.max(0, Math.min(im.nx - 1, Math.round(px / D.stride)));
  row.value = Math.max(0, Math.min(im.ny - 1, Math.round(py / D.stride))); show(); });
image.addEventListener("change", () => { setGrid(); show(); });
row.addEventListener("input", show); col.addEventListener("input", show);
let loaded = 0; [patch, ...pictures].forEach(p => p.complete ? loaded++ : p.addEventListener("load", () => {
  if (++loaded === pictures.length + 1) show(); }));
setGrid(); if (loaded === pictures.length + 1) show();
