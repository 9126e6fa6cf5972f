"""Rebuild everything under data/ from public sources that are reachable offline.

    python scripts/build_data.py            # needs apt-get (Debian) for the two .deb packages

What it writes (and data/MANIFEST.tsv records with sha256, source and licence):

- data/clipart/sprites.png + sprites.json: the object sprites of the default data set, drawn from
  Debian's public-domain `openclipart-png`, 10 balanced classes, each sprite cropped to its alpha
  box and fitted (aspect kept) into a 128x128 transparent tile, split into train/val/test by sprite.
- data/backgrounds/photos.jpg + photos.json: square crops of public-domain / CC0 photos and textures
  that ship with scikit-image, used behind the sprites.
- data/tuxpaint/stamps.png + stamps.json + COPYING: a small "Caltech-like" transfer set of photo
  cut-outs from Debian's `tuxpaint-stamps-default` (GPL-2; the notice travels with the files).

Everything is deterministic: files are sorted, and the only randomness (which sprites go to which
split, where photo crops are taken) comes from numpy generators seeded below.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from zfviz.data import sha256_file  # noqa: E402  (one implementation of the manifest's hash)
DATA = ROOT / "data"
TILE = 128          # sprites and backgrounds are stored at this size; the book renders 112 px images
MARGIN = 4          # keep a transparent border so rotated sprites are not clipped by the tile
SEED = 2014         # the paper's year; used for the split and the crop positions
# Some openclipart PNGs are over 100 megapixels. Decoding one costs >400 MB and Pillow warns of a
# "decompression bomb"; we skip anything above this bound on purpose (the header tells the size
# without decoding) and list it in sprites.json under "skipped".
MAX_PIXELS = 40_000_000

# Visually coherent, distinct categories with at least 54 usable drawings each (class name -> folders).
CLIPART_CLASSES = {
    "mammal": ["animals/mammals"],
    "fruit": ["food/fruit"],
    "dessert": ["food/desserts"],
    "beverage": ["food/beverages"],
    "instrument": ["recreation/music"],
    "vehicle": ["transportation/vehicles"],
    "road sign": ["transportation/roadsigns"],
    "clothing": ["people/clothing"],
    "computer": ["computer/hardware"],
    "flag": ["signs_and_symbols/flags"],
}
SPLIT_SIZES = {"val": 8, "test": 8}   # sprites per class held out; the rest (at equal count) train

TUXPAINT_CLASSES = {
    "mammal": ["animals/mammals"],
    "bird": ["animals/birds"],
    "insect": ["animals/insects"],
    "fruit": ["food/fruit"],
    "vegetable": ["food/vegetables"],
    "flower": ["plants/flowers"],
    "house": ["town/houses"],
    "vehicle": ["vehicles"],
}
TUXPAINT_PER_CLASS = 18

# scikit-image sample images: (function, licence as stated in skimage.data's docstrings).
# Left out on purpose: chelsea (a cat) and astronaut (a person) and coffee (a cup), whose objects
# would leak class evidence into the background of other classes; they stay available as demo photos.
BACKGROUND_PHOTOS = {
    "rocket": "public domain (SpaceX)",
    "hubble_deep_field": "public domain (NASA/ESA)",
    "retina": "CC0 1.0",
    "immunohistochemistry": "no known copyright restrictions",
    "brick": "CC0 (CC0Textures)",
    "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)",
}
CROPS_PER_PHOTO = 24


def fetch_deb(package: str, members: str, workdir: Path) -> tuple[Path, str]:
    """Download a Debian package with apt-get and unpack the wanted members; returns (root, version)."""
    subprocess.run(["apt-get", "download", package], cwd=workdir, check=True)
    deb = next(workdir.glob(f"{package}_*.deb"))
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    out = workdir / package
    out.mkdir()
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(out), "--wildcards", members], stdin=tar.stdout, check=True)
    tar.wait()
    return out, version


def load_sprite(path: Path) -> tuple[np.ndarray | None, str]:
    """Read a PNG as an RGBA tile of TILE x TILE, or (None, reason) when it is not usable."""
    with Image.open(path) as im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            return None, f"{w}x{h} px exceeds the {MAX_PIXELS:,} pixel bound"
        im = im.convert("RGBA")
    a = np.asarray(im)[..., 3]
    cover = (a > 128).mean()
    if cover > 0.97:
        return None, "opaque: no transparent background to composite with"
    ys, xs = np.nonzero(a > 16)
    if len(ys) == 0:
        return None, "empty: fully transparent"
    im = im.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    side = TILE - 2 * MARGIN
    scale = side / max(im.size)
    size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
    # Resize premultiplied ("RGBa") so transparent pixels do not bleed dark fringes into the edges.
    im = im.convert("RGBa").resize(size, Image.LANCZOS).convert("RGBA")
    tile = Image.new("RGBA", (TILE, TILE), (0, 0, 0, 0))
    tile.paste(im, ((TILE - size[0]) // 2, (TILE - size[1]) // 2))
    arr = np.asarray(tile)
    if (arr[..., 3] > 128).sum() < 0.02 * TILE * TILE:
        return None, "too thin: object covers under 2% of its tile"
    return arr, ""


def save_atlas(tiles: list[np.ndarray], path: Path, columns: int = 32, **save_kw) -> None:
    rows = (len(tiles) + columns - 1) // columns
    ch = tiles[0].shape[2]
    atlas = np.zeros((rows * TILE, columns * TILE, ch), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        atlas[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = t
    Image.fromarray(atlas).save(path, **save_kw)


def build_sprite_set(root: Path, classes: dict, per_class: int | None, out_dir: Path,
                     package: str, version: str, licence: str, splits: dict | None) -> dict:
    rng = np.random.default_rng(SEED)
    usable: dict[str, list[tuple[str, np.ndarray]]] = {}
    skipped = []
    for name, folders in classes.items():
        files = sorted(f for d in folders for f in (root / d).rglob("*.png"))
        usable[name] = []
        for f in files:
            arr, why = load_sprite(f)
            rel = str(f.relative_to(root))
            if arr is None:
                skipped.append({"source": rel, "reason": why})
            else:
                usable[name].append((rel, arr))
        print(f"  {name:12s} {len(files):4d} files, {len(usable[name]):4d} usable", flush=True)
    n = per_class or min(len(v) for v in usable.values())
    items, tiles = [], []
    for label, (name, sprites) in enumerate(usable.items()):
        if len(sprites) < n:
            raise SystemExit(f"class {name!r} has {len(sprites)} usable sprites, need {n}")
        order = rng.permutation(len(sprites))[:n]
        chosen = [sprites[i] for i in sorted(order)]
        split_of = ["train"] * n
        if splits:
            held_out = [s for s, m in splits.items() for _ in range(m)]
            split_of = held_out + ["train"] * (n - len(held_out))
            split_of = [split_of[i] for i in rng.permutation(n)]
        for (rel, arr), split in zip(chosen, split_of):
            items.append({"label": label, "split": str(split), "source": rel})
            tiles.append(arr)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "sprites" if splits else "stamps"
    save_atlas(tiles, out_dir / f"{stem}.png", optimize=True)
    meta = {
        "what": "RGBA object tiles; atlas row-major, 32 tiles per row",
        "tile": TILE, "columns": 32, "count": len(tiles),
        "classes": list(classes), "folders": classes, "per_class": n,
        "package": package, "package_version": version, "licence": licence,
        "seed": SEED, "command": "python scripts/build_data.py",
        "items": items, "skipped": skipped,
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def build_backgrounds(out_dir: Path) -> None:
    import skimage.data
    rng = np.random.default_rng(SEED)
    tiles, sources = [], []
    for name, licence in BACKGROUND_PHOTOS.items():
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        h, w = img.shape[:2]
        for _ in range(CROPS_PER_PHOTO):
            side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = Image.fromarray(img[y:y + side, x:x + side]).resize((TILE, TILE), Image.LANCZOS)
            tiles.append(np.asarray(crop))
            sources.append({"photo": f"skimage.data.{name}", "box": [x, y, side], "licence": licence})
    out_dir.mkdir(parents=True, exist_ok=True)
    save_atlas(tiles, out_dir / "photos.jpg", columns=24, quality=90)
    meta = {"what": "RGB 128x128 background crops; atlas row-major, 24 tiles per row",
            "tile": TILE, "columns": 24, "count": len(tiles), "seed": SEED,
            "command": "python scripts/build_data.py", "items": sources}
    (out_dir / "photos.json").write_text(json.dumps(meta, indent=1) + "\n")


def write_manifest() -> None:
    sources = {
        "clipart": ("Debian openclipart-png", "public domain"),
        "backgrounds": ("scikit-image sample data", "public domain / CC0 (see photos.json)"),
        "tuxpaint": ("Debian tuxpaint-stamps-default", "GPL-2 (see tuxpaint/COPYING)"),
        "weights": ("trained by python -m zfviz.train (see the .json beside)", "MIT, as this repository"),
    }
    files = {  # single files whose source differs from their folder's
        "clipart/parts.json": ("annotated by hand in this repository (points on Debian openclipart-png drawings)",
                               "MIT, as this repository"),
    }
    rows = []
    for f in sorted(DATA.rglob("*")):
        if f.is_file() and f.name != "MANIFEST.tsv":
            rel = f.relative_to(DATA).as_posix()
            src, lic = files.get(rel) or sources.get(rel.split("/")[0], ("this repository", "MIT"))
            rows.append(f"{rel}\t{f.stat().st_size}\t{sha256_file(f)}\t{src}\t{lic}")
    header = "# path\tbytes\tsha256\tsource\tlicence\n"
    (DATA / "MANIFEST.tsv").write_text(header + "\n".join(rows) + "\n")
    print(f"wrote data/MANIFEST.tsv ({len(rows)} files)")


def ship_json(rel: str, record: dict) -> Path:
    """Write a result record to data/<rel> (JSON) and rewrite the manifest; used by the experiment scripts.
    An absolute ``rel`` outside data/ is written there, and the manifest is left as it was."""
    target = DATA / rel
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(record, indent=1) + "\n")
    if target.resolve().is_relative_to(DATA.resolve()):
        write_manifest()
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
    return target


def machine(threads: int) -> dict:
    """Where a result was computed: float sums depend on the CPU's code path and the thread count."""
    import platform
    import torch
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
             if line.startswith("model name")]
    return {"cpu": names[0] if names else platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": threads, "torch": torch.__version__, "device": "cpu"}


def ship_torch(rel: str, shipped: dict, record: dict) -> Path:
    """Save tensors to data/<rel> (``torch.save``), their record with its sha256 beside them (same name,
    .json), and rewrite the manifest; used by the experiment scripts that ship weights."""
    import torch
    target = DATA / rel
    target.parent.mkdir(exist_ok=True)
    torch.save(shipped, target)
    record["sha256"] = sha256_file(target)
    ship_json(Path(rel).with_suffix(".json").as_posix(), record)
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
    return target


def main(argv: list[str]) -> None:
    if argv == ["--manifest-only"]:
        write_manifest()
        return
    Image.MAX_IMAGE_PIXELS = None  # we bound sizes ourselves (MAX_PIXELS) before decoding
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("openclipart-png ...", flush=True)
        oc, oc_version = fetch_deb("openclipart-png", "./usr/share/openclipart/png/*", tmp)
        build_sprite_set(oc / "usr/share/openclipart/png", CLIPART_CLASSES, None, DATA / "clipart",
                         "openclipart-png", oc_version, "public domain", SPLIT_SIZES)
        print("tuxpaint-stamps-default ...", flush=True)
        tux, tux_version = fetch_deb("tuxpaint-stamps-default", "./usr/share/*", tmp)
        build_sprite_set(tux / "usr/share/tuxpaint/stamps", TUXPAINT_CLASSES, TUXPAINT_PER_CLASS,
                         DATA / "tuxpaint", "tuxpaint-stamps-default", tux_version, "GPL-2", None)
        copying = next((tux / "usr/share/doc/tuxpaint-stamps-default").glob("copyright"))
        notice = ("The images in stamps.png are resized copies of photographs from the Debian package\n"
                  f"tuxpaint-stamps-default {tux_version} (Tux Paint stamps, https://tuxpaint.org/),\n"
                  "distributed under the GNU General Public License, version 2. The package's copyright\n"
                  "file and the full text of the GPL-2 follow.\n\n")
        gpl = Path("/usr/share/common-licenses/GPL-2").read_text()
        (DATA / "tuxpaint" / "COPYING").write_text(notice + copying.read_text() + "\n\n" + gpl)
    print("backgrounds ...", flush=True)
    build_backgrounds(DATA / "backgrounds")
    write_manifest()


if __name__ == "__main__":
    main(sys.argv[1:])
