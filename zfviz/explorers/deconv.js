const q = s => root.querySelector(s);
const layer = q(".layer"), map = q(".map"), image = q(".image");
const opt = (sel, value, text) => { const o = document.createElement("option"); o.value = value;
  o.textContent = text; sel.appendChild(o); };
Object.keys(D.layers).forEach(l => opt(layer, l, l));
D.images.forEach(im => opt(image, im.index, im.index + " (" + im.label + ")"));
function fillMaps() { map.innerHTML = ""; D.layers[layer.value].forEach(m => opt(map, m, m)); }
function show() {
  const v = D.views[layer.value + "," + map.value + "," + image.value];
  const im = D.images.find(i => String(i.index) === image.value);
  q(".picture").src = im.u; q(".patch").src = v.q; q(".projection").src = v.u;
  root.querySelectorAll(".box").forEach(b => { b.style.top = 100 * v.b[0] + "%";
    b.style.left = 100 * v.b[1] + "%"; b.style.height = 100 * (v.b[2] - v.b[0]) + "%";
    b.style.width = 100 * (v.b[3] - v.b[1]) + "%"; });
  q(".caption").textContent = "layer " + layer.value + ", feature map " + map.value + ", image " + image.value +
    " (" + im.label + "): strongest activation " + v.a.toFixed(2) + " at (" + v.p.join(", ") +
    "); the box is its receptive field, shown beside it with the projection";
  root.dataset.view = layer.value + "," + map.value + "," + image.value;
}
layer.addEventListener("change", () => { fillMaps(); show(); });
map.addEventListener("change", show); image.addEventListener("change", show);
fillMaps(); show();
