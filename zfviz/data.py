"""Data that works offline: clip-art objects composited on backgrounds, a photo transfer set,
Fashion-MNIST from Debian's package, and any ImageFolder tree.

Explained in the chapter "The network" (the data set) and "Training ZFNet" (the pipeline).

The default data set ("clipart") is made for this book. Each image is one public-domain Openclipart
drawing of one of 10 classes, scaled, rotated, flipped and placed on a background (a crop of a
public-domain photo or texture, a flat colour, or a colour gradient). Because we composite, every
image comes with the object's mask and box, which the occlusion chapter uses to check where the
network looks. Sprites are split by drawing: validation and test objects are never seen in training.
Validation and test sets are rendered once from a fixed seed; the training set is rendered afresh
each epoch (``set_epoch``), with all randomness drawn from seeded generators.
"""
from __future__ import annotations

import copy

import gzip
import hashlib
import json
import math
import os
import shutil
import zlib
from pathlib import Path, PurePath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from ._checks import as_int, check_int, deprecated_alias, renamed_keyword

__all__ = ["DATA_DIR", "DataIntegrityError", "verify", "manifest", "sha256_file", "file_hexdigest", "data_path", "load_dataset", "DATASETS",
           "ClipArt", "TuxPaint", "Preprocess", "fashion_mnist", "image_folder", "composite", "ten_crops"]

DATA_DIR = Path(os.environ.get("ZFVIZ_DATA", Path(__file__).resolve().parents[1] / "data"))
SPLITS = ("train", "val", "test")
# TuxPaint's one split "all" is rendered as a training split (new composites for each epoch).
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "all": 0}
REBUILD = "python scripts/build_data.py"


class DataIntegrityError(ValueError):
    """A data file is damaged (chapter "The network"): a file in data/ does not match the sha256 recorded in
    data/MANIFEST.tsv, a line of the manifest itself is malformed, or an image of an ImageFolder cannot be read.
    The message names the file (and the manifest's line) and says what is wrong."""


def file_hexdigest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes by any ``hashlib`` algorithm (``hashlib.file_digest``, read in blocks).

    Explained in the chapter "The network" (data/MANIFEST.tsv records sha256). ``algorithm`` names another
    digest for files whose publishers give one: pytorchcv's weights come with their sha1
    (``zfviz.pretrained.pretrained_zfnet``).
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, as data/MANIFEST.tsv records it; explained in the chapter "The network".

    ``file_hexdigest(path, "sha256")``; :func:`file_hexdigest` takes other algorithms.
    """
    return file_hexdigest(path, "sha256")


MANIFEST_FIELDS = ("path", "bytes", "sha256", "source", "licence")
_HEX = frozenset("0123456789abcdef")


def _manifest_rows(data_dir: Path) -> dict[str, tuple[int, str]]:
    """``{path: (bytes, sha256)}`` from data_dir/MANIFEST.tsv: one tab-separated line per file with the five
    fields of MANIFEST_FIELDS; lines starting with # and empty lines are comments. Any other line that is not
    exactly that raises DataIntegrityError naming the manifest and the line number."""
    path = data_dir / "MANIFEST.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it lists the sha256 of every data file. "
                                f"Restore it from git or rebuild data/ with `{REBUILD}`.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataIntegrityError(f"{path} is not UTF-8 text ({e}); restore it from git or rebuild data/ "
                                 f"with `{REBUILD}`") from e
    rows: dict[str, tuple[int, str]] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")            # a CRLF manifest lists the same files (its data files are checked)
        if not line or line.startswith("#"):
            continue

        def bad(what: str) -> DataIntegrityError:
            return DataIntegrityError(f"{path}, line {number}: {what}; each line must be "
                                      f"{' <TAB> '.join(MANIFEST_FIELDS)} (lines starting with # are comments). "
                                      f"Restore the manifest from git or rebuild data/ with `{REBUILD}`")
        fields = line.split("\t")
        if len(fields) != len(MANIFEST_FIELDS):
            raise bad(f"{len(fields)} tab-separated field{'s' if len(fields) != 1 else ''}, "
                      f"expected {len(MANIFEST_FIELDS)}: {line[:80]!r}")
        rel, size, digest = fields[:3]
        if not rel or rel != rel.strip() or rel.startswith("/") or "\\" in rel or ".." in rel.split("/"):
            raise bad(f"path {rel!r} is not a relative path inside data/ written with /")
        if not (size.isascii() and size.isdigit()):
            raise bad(f"bytes {size!r} is not a whole number of bytes")
        if len(digest) != 64 or not set(digest.lower()) <= _HEX:
            raise bad(f"sha256 {digest!r} is not 64 hexadecimal digits")
        if rel in rows:
            raise bad(f"{rel} is listed twice (first on line {first_line[rel]})")
        rows[rel], first_line[rel] = (int(size), digest.lower()), number
    return rows


def manifest(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """``{path: sha256}`` of every file data/MANIFEST.tsv lists (``data_dir``: another copy of data/).

    Explained in the chapter "The network" (the book's data and weights, each with its sha256).
    """
    return _manifest(Path(data_dir) if data_dir is not None else DATA_DIR)


def _manifest(data_dir: Path) -> dict[str, str]:
    """``{path: sha256}`` of every file data_dir/MANIFEST.tsv lists (see :func:`_manifest_rows`)."""
    return {rel: digest for rel, (_size, digest) in _manifest_rows(Path(data_dir)).items()}


def _crlf_note(path: Path, expected: str) -> str:
    """Why a text file's hash differs, when it is the recorded file with LF turned into CRLF (git core.autocrlf)."""
    if path.stat().st_size > (64 << 20):
        return ""
    raw = path.read_bytes()
    if b"\r\n" not in raw or hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest() != expected:
        return ""
    return (" (its line endings were converted to CRLF, as git does with core.autocrlf=true when the "
            "repository's .gitattributes is missing; with .gitattributes in place delete the file and run "
            "`git checkout -- <file>`)")


_verified: dict[tuple, bool] = {}


def verify(rel: str, data_dir: Path | str | None = None) -> Path:
    """Return the path of ``data/<rel>`` after checking it against data/MANIFEST.tsv (size and sha256).

    Explained in the chapter "The network". ``rel``: the path inside data/ as the manifest writes it
    ("clipart/sprites.png"; a ``pathlib`` path is written with /). Raises ``FileNotFoundError`` for a missing
    file and :class:`DataIntegrityError` (a ``ValueError``) for a corrupted or unlisted one or a malformed
    manifest, naming the file. A file is hashed once per process unless its size or modification time change.
    """
    if isinstance(rel, PurePath):
        rel = rel.as_posix()
    if not isinstance(rel, str):
        raise TypeError(f"rel must be a str path inside data/ such as 'clipart/sprites.png'; got {type(rel).__name__}")
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a folder path (str or pathlib.Path) or None for the repository's data/; "
                        f"got {type(data_dir).__name__}")
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    path = data_dir / rel
    row = _manifest_rows(data_dir).get(rel)
    if row is None:
        raise DataIntegrityError(f"data/{rel} is not listed in {data_dir / 'MANIFEST.tsv'}; "
                                 f"refusing to read an unrecorded file")
    size, expected = row
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} is missing; restore it from git or rebuild with `{REBUILD}`")
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, expected)
    if key not in _verified:
        if st.st_size != size:
            what = f"{st.st_size} bytes but MANIFEST.tsv records {size}"
        else:
            actual = sha256_file(path)
            what = None if actual == expected else (f"sha256 {actual[:16]}... but MANIFEST.tsv records "
                                                     f"{expected[:16]}...")
        if what is not None:
            raise DataIntegrityError(f"data file {path} is corrupted: {what}{_crlf_note(path, expected)}; "
                                     f"restore it from git or rebuild with `{REBUILD}`")
        _verified[key] = True
    return path


def data_path(rel: str) -> Path:
    """Verified path of a file under data/ (see :func:`verify`); explained in the chapter "The network"."""
    return verify(rel)


# --------------------------------------------------------------------------------------------
# Argument checks shared by the public functions: clear errors instead of failures deep in PyTorch.
# --------------------------------------------------------------------------------------------

PIXEL_TOLERANCE = 1e-3     # pixels may stray this far outside [0, 1] (float rounding of a resize or blend)


def _check_folder(name: str, value, allow_none: bool = False) -> Path | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a folder path (str or pathlib.Path){' or None' if allow_none else ''}; "
                        f"got {type(value).__name__}")
    return Path(value)


def _check_pixels(name: str, x, shape: str) -> None:
    """``x`` must be a float tensor of pixels in [0, 1] (finite); ``shape`` describes it in the message."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape} of float pixels in [0, 1]; got {type(x).__name__}")
    if not x.is_floating_point():
        fix = "x.float() / 255" if x.dtype == torch.uint8 else "x.float(), scaled to [0, 1]"
        raise TypeError(f"{name} must be float pixels in [0, 1]; got dtype {x.dtype}. Convert with {fix}")
    if x.numel() == 0:
        return
    lo, hi = torch.stack([x.detach().min(), x.detach().max()]).float().tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be float pixels in [0, 1]; it holds NaN or infinite values")
    if lo < -PIXEL_TOLERANCE or hi > 1 + PIXEL_TOLERANCE:
        hint = (" (0-255 pixels? divide by 255)" if hi > 1 + PIXEL_TOLERANCE and lo >= 0 and hi <= 255
                else " (already preprocessed? pass the pixels)")
        raise ValueError(f"{name} must be float pixels in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]{hint}")


def _check_index_tensor(name: str, value, what: str) -> torch.Tensor:
    """An int or a sequence/tensor of ints as a long tensor; floats and bools (a mask is not a list of indices) raise."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if t.numel() == 0:
        return t.long()                                     # np.asarray([]) is float64: empty is no float
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must be {what} (ints), got dtype {t.dtype}"
                        + ("; for a boolean mask pass mask.nonzero().flatten()" if t.dtype == torch.bool else ""))
    return t.long()


def _read_atlas(rel: str, data_dir) -> tuple[torch.Tensor, dict]:
    """Tiles of an atlas image as a uint8 tensor (N, C, T, T) plus its JSON description."""
    meta_rel = rel.rsplit(".", 1)[0] + ".json"
    meta = json.loads(verify(meta_rel, data_dir).read_text())
    with Image.open(verify(rel, data_dir)) as im:
        atlas = np.asarray(im)
    t, cols = meta["tile"], meta["columns"]
    tiles = [atlas[(i // cols) * t:(i // cols + 1) * t, (i % cols) * t:(i % cols + 1) * t]
             for i in range(meta["count"])]
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous(), meta


# --------------------------------------------------------------------------------------------
# Compositing: one batched grid_sample places every sprite (scale, rotation, flip, position).
# --------------------------------------------------------------------------------------------

def composite(sprites: torch.Tensor, backgrounds: torch.Tensor, scale: torch.Tensor,
              angle: torch.Tensor, center: torch.Tensor, flip: torch.Tensor,
              size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste RGBA sprites onto RGB backgrounds.

    Explained in the chapter "The network".

    Args:
        sprites: (N, 4, T, T) float in [0, 1], straight (not premultiplied) alpha.
        backgrounds: (N, 3, size, size) float in [0, 1].
        scale: (N,) side of the sprite's tile as a fraction of the image side, > 0.
        angle: (N,) rotation in radians. center: (N, 2) tile centre (x, y) in [-1, 1] image coords.
        flip: (N,) bool, mirror the sprite left-right.
        size: side of the output images, an int >= 1.
    Returns:
        images (N, 3, size, size) in [0, 1] (float64 for float64 sprites, else float32) and masks
        (N, size, size) bool (alpha > 0.5). Bad arguments raise TypeError/ValueError naming them.
    """
    size = check_int("size", size, 1, why=" (the side of the output images in pixels)")
    _check_sprites_and_backgrounds(sprites, backgrounds, size)
    # float64 stays float64; float16/bfloat16 are composited in float32 (the CPU's grid_sample needs it)
    dtype = torch.promote_types(torch.promote_types(sprites.dtype, backgrounds.dtype), torch.float32)
    params = _placement_params(sprites, backgrounds, dtype, scale=scale, angle=angle, center=center, flip=flip)
    grid = _sprite_grid(params["scale"], params["angle"], params["center"], flip, size)
    return _paste(sprites.to(dtype), backgrounds.to(dtype), grid)


def _check_sprites_and_backgrounds(sprites, backgrounds, size: int) -> None:
    """RGBA sprites (N, 4, T, T) and RGB backgrounds (N, 3, size, size), float pixels in [0, 1]."""
    _check_pixels("sprites", sprites, "(N, 4, T, T)")
    if sprites.dim() != 4 or sprites.shape[1] != 4:
        raise ValueError(f"sprites must be RGBA tiles (N, 4, T, T); got shape {tuple(sprites.shape)}")
    n = sprites.shape[0]
    _check_pixels("backgrounds", backgrounds, f"({n}, 3, {size}, {size})")
    if tuple(backgrounds.shape) != (n, 3, size, size):
        raise ValueError(f"backgrounds must be (N, 3, size, size) = ({n}, 3, {size}, {size}); "
                         f"got {tuple(backgrounds.shape)}")


def _placement_params(sprites, backgrounds, dtype, **given) -> dict[str, torch.Tensor]:
    """Check composite's ``scale``, ``angle``, ``center`` (real, finite, in ``dtype``) and ``flip`` (bool):
    one per sprite, on the sprites' device; returns the first three converted to ``dtype``."""
    n = sprites.shape[0]
    params = {}
    for name, shape in (("scale", (n,)), ("angle", (n,)), ("center", (n, 2)), ("flip", (n,))):
        t = given[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor {shape}; got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} (one per sprite); got {tuple(t.shape)}")
        if t.device != sprites.device or backgrounds.device != sprites.device:
            raise ValueError(f"sprites, backgrounds and {name} must be on one device; got {sprites.device}, "
                             f"{backgrounds.device} and {t.device}")
        if name == "flip":
            if t.dtype != torch.bool:
                raise TypeError(f"flip must be a bool tensor (N,) (True: mirror left-right); got dtype {t.dtype}")
            continue
        if t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{name} must be real numbers; got dtype {t.dtype}")
        t = t.to(dtype)
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
        params[name] = t
    if not (params["scale"] > 0).all():
        raise ValueError(f"scale must be > 0 (the tile's side as a fraction of the image side); "
                         f"got min {float(params['scale'].min()):.4g}")
    return params


def _sprite_grid(scale, angle, center, flip, size: int) -> torch.Tensor:
    """grid_sample's grid: each output pixel mapped to a sprite coordinate, p_sprite = R(-a) (p_out - c) / s."""
    n, dtype = len(scale), scale.dtype
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx = torch.where(flip, -1.0, 1.0).to(dtype)
    theta = torch.zeros(n, 2, 3, dtype=dtype, device=scale.device)
    theta[:, 0, 0], theta[:, 0, 1] = sx * cos / scale, sx * sin / scale
    theta[:, 1, 0], theta[:, 1, 1] = -sin / scale, cos / scale
    theta[:, :, 2] = -(theta[:, :, :2] @ center.unsqueeze(-1)).squeeze(-1)
    return F.affine_grid(theta, (n, 4, size, size), align_corners=False)


def _paste(sprites, backgrounds, grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the sprites by ``grid`` and blend them over the backgrounds: images in [0, 1] and masks (alpha > 0.5)."""
    # Premultiply so the bilinear filter does not mix colour from transparent pixels into the edge.
    rgba = torch.cat([sprites[:, :3] * sprites[:, 3:], sprites[:, 3:]], dim=1)
    warped = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    alpha = warped[:, 3:]
    images = warped[:, :3] + (1 - alpha) * backgrounds
    return images.clamp(0, 1), alpha[:, 0] > 0.5


def _background_params(g: torch.Generator, n: int, n_photos: int) -> dict[str, torch.Tensor]:
    """Random choices for n backgrounds, drawn up front so that images do not depend on batching."""
    return {"kind": torch.rand(n, generator=g), "photo": torch.randint(n_photos, (n,), generator=g),
            "zoom": 0.5 + 0.5 * torch.rand(n, generator=g), "shift": 2 * torch.rand(n, 2, generator=g) - 1,
            "tint": 0.6 + 0.8 * torch.rand(n, 3, 1, 1, generator=g),
            "c1": torch.rand(n, 3, 1, 1, generator=g), "c2": torch.rand(n, 3, 1, 1, generator=g),
            "ramp": 2 * math.pi * torch.rand(n, 1, 1, generator=g)}


def _backgrounds(photos: torch.Tensor, p: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Backgrounds (n, 3, size, size): 60% zoomed, tinted photo/texture crops, 20% flat colours, 20% gradients."""
    n = len(p["kind"])
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = p["zoom"]
    theta[:, :, 2] = (1 - p["zoom"]).unsqueeze(1) * p["shift"]
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    crops = F.grid_sample(photos[p["photo"]].float() / 255, grid, mode="bilinear", align_corners=False)
    crops = (crops * p["tint"]).clamp(0, 1)        # grey textures become coloured ones
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    t = (torch.cos(p["ramp"]) * xs + torch.sin(p["ramp"]) * ys).unsqueeze(1)
    lo, hi = t.amin((2, 3), keepdim=True), t.amax((2, 3), keepdim=True)
    gradient = p["c1"] + (p["c2"] - p["c1"]) * (t - lo) / (hi - lo + 1e-6)
    k = p["kind"].view(n, 1, 1, 1)
    return torch.where(k < 0.6, crops, torch.where(k < 0.8, p["c1"].expand(n, 3, size, size), gradient))


# The teaching network's input side (zfviz.train's default): at 192 px a layer-5 unit sees 139/192 = 72% of the
# image side (the paper's 224: 62%); at the earlier 112 px layers 4 and 5 saw whole images.
TEACHING_INPUT_SIZE = 192
TEACHING_IMAGE_SIZE = TEACHING_INPUT_SIZE     # its name before issue 17, kept for old code


class ClipArt(Dataset):
    """The book's default data set: 10 classes of clip-art objects on varied backgrounds.

    Explained in the chapter "The network".

    Args:
        split: "train", "val" or "test" (sprites are disjoint between splits).
        input_size: side of the square images (TEACHING_INPUT_SIZE = 192 for the teaching net, 224 as in the paper);
            the old keyword ``image_size=`` still works, with a DeprecationWarning.
        renders: how many composites of each sprite the split holds.
        seed: validation/test images depend only on (seed, split); training images also on the epoch.
        data_dir: folder holding MANIFEST.tsv and clipart/ (default: the repository's data/).

    ``dataset[i]`` is ``(image, label)``: image (3, S, S) float in [0, 1], label an int.
    ``dataset.masks[i]`` (S, S) bool and ``dataset.boxes[i]`` (x0, y0, x1, y1) locate the object.
    """

    sprite_file = "clipart/sprites.png"
    min_scale, max_scale = 0.55, 1.0      # tile side / image side; the object fills ~45-95% of it
    max_angle = math.radians(20)
    image_size = deprecated_alias("image_size", "input_size")    # the attribute's name before issue 17

    @renamed_keyword("image_size", "input_size")
    def __init__(self, split: str = "train", input_size: int = TEACHING_INPUT_SIZE, renders: int = 4, seed: int = 0,
                 data_dir: str | Path | None = None, epoch: int = 0):
        if not isinstance(split, str) or split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        input_size = check_int("input_size", input_size, 16)
        renders = check_int("renders", renders, 1, why=" (composites of each drawing)")
        seed = check_int("seed", seed, 0)
        epoch = check_int("epoch", epoch, 0)
        data_dir = _check_folder("data_dir", data_dir, allow_none=True)
        self.split, self.input_size, self.renders, self.seed = split, input_size, renders, seed
        tiles, meta = _read_atlas(self.sprite_file, data_dir)
        self.classes = meta["classes"]
        keep = [i for i, it in enumerate(meta.get("items")) if it.get("split", "train") == split]
        self.sprite_sources = [meta["items"][i]["source"] for i in keep]
        self.sprites = tiles[keep]                                          # (M, 4, T, T) uint8
        self.sprite_labels = torch.tensor([meta["items"][i]["label"] for i in keep])
        self.photos, _ = _read_atlas("backgrounds/photos.jpg", data_dir)    # (P, 3, T, T) uint8
        self.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        n = len(self)
        if as_int(i) is None:
            raise TypeError(f"index must be an int in -{n}..{n - 1} (one image); got {i!r}")
        i = as_int(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range: the data set has {n} images")
        return self.images[i].float() / 255, int(self.labels[i])

    def set_epoch(self, epoch: int) -> None:
        """Render the split: fixed for val/test, new composites for each training epoch (an int >= 0)."""
        epoch = check_int("epoch", epoch, 0)
        self.epoch = epoch
        stream = [self.seed, _SPLIT_IDS[self.split], epoch if self.split in ("train", "all") else 0]
        g = torch.Generator().manual_seed(int(np.random.SeedSequence(stream).generate_state(1)[0]))
        m = len(self.sprites)
        which = torch.arange(m).repeat(self.renders)                       # every sprite, `renders` times
        n = len(which)
        scale = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(n, generator=g)
        angle = self.max_angle * (2 * torch.rand(n, generator=g) - 1)
        flip = torch.rand(n, generator=g) < 0.5
        # Keep the tile's centre so that most of the object stays inside the frame.
        center = (1 - scale * 0.8).unsqueeze(1) * (2 * torch.rand(n, 2, generator=g) - 1)
        back = _background_params(g, n, len(self.photos))
        images, masks = [], []
        for s in range(0, n, 256):                                        # bounded memory
            sl = slice(s, s + 256)
            backs = _backgrounds(self.photos, {k: v[sl] for k, v in back.items()}, self.input_size)
            im, mk = composite(self.sprites[which[sl]].float() / 255, backs, scale[sl], angle[sl],
                               center[sl], flip[sl], self.input_size)
            images.append((im * 255).round().to(torch.uint8))
            masks.append(mk)
        self.images = torch.cat(images)                                   # (N, 3, S, S) uint8
        self.masks = torch.cat(masks)                                     # (N, S, S) bool
        self.labels = self.sprite_labels[which]
        self.sprite_index = which
        self.boxes = torch.stack([_box(mk) for mk in self.masks])
        # How each drawing was placed: lets locate() find the same point of a drawing in all its renders.
        self.placement = {"scale": scale, "angle": angle, "center": center, "flip": flip}

    def locate(self, index, uv) -> torch.Tensor:
        """Where a point of the drawing landed in the images: pixel coordinates (x, y) in render(s) ``index``.

        Explained in the chapter "§4.3 Correspondence" (the same part of a drawing in several renders).
        ``uv``: (2,) or (K, 2), the point as a fraction of the drawing's square tile, (0, 0) its top-left
        corner and (1, 1) its bottom-right, before flipping, tilting and scaling. ``index``: an int or a
        (K,) tensor of renders. Returns (2,) or (K, 2) float, continuous pixel coordinates (the centre of
        pixel (i, j) is (j + 0.5, i + 0.5)); the composite's own transform, inverted.
        """
        idx = _check_index_tensor("index", index, "an int or a (K,) tensor of render indices")
        uv = torch.as_tensor(uv, dtype=torch.float32)
        if uv.dim() == 0 or uv.shape[-1] != 2 or uv.dim() > 2 or idx.dim() > 1:
            raise ValueError(f"uv must be (2,) or (K, 2) and index an int or (K,); got uv {tuple(uv.shape)}, "
                             f"index {tuple(idx.shape)}")
        if not torch.isfinite(uv).all():
            raise ValueError("uv must be finite (fractions of the drawing's tile); it holds NaN or infinite values")
        if idx.numel() and not (0 <= int(idx.min()) and int(idx.max()) < len(self)):
            raise ValueError(f"index must be in [0, {len(self) - 1}], got {index!r}")
        p = self.placement
        s, a, c = p["scale"][idx], p["angle"][idx], p["center"][idx]
        sx = torch.where(p["flip"][idx], -1.0, 1.0)
        u, v = 2 * uv[..., 0] - 1, 2 * uv[..., 1] - 1               # tile coordinates in [-1, 1]
        # composite() samples the sprite at A (p_out - c) with A = M / s, M = [[sx cos, sx sin], [-sin, cos]];
        # M^-1 = [[sx cos, -sin], [sx sin, cos]] since det M = sx = +-1.
        x = c[..., 0] + s * (sx * torch.cos(a) * u - torch.sin(a) * v)
        y = c[..., 1] + s * (sx * torch.sin(a) * u + torch.cos(a) * v)
        return torch.stack([(x + 1) / 2 * self.input_size, (y + 1) / 2 * self.input_size], dim=-1)

    def subset(self, sprites) -> "ClipArt":
        """A copy that renders only the drawings ``sprites`` (indices into ``self.sprites``), in that order.

        Explained in the chapter "§5 Experiments" (training on a few images per class). Same size, renders,
        seed and epoch; its images are new renders (the placements depend on the number of drawings).
        """
        idx = _check_index_tensor("sprites", sprites, "a list of drawing indices").flatten()
        if len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(self.sprites):
            raise ValueError(f"sprites must be a non-empty list of indices in [0, {len(self.sprites) - 1}], "
                             f"got {sprites!r}")
        sub = copy.copy(self)
        sub.sprites, sub.sprite_labels = self.sprites[idx], self.sprite_labels[idx]
        sub.sprite_sources = [self.sprite_sources[i] for i in idx.tolist()]
        sub.set_epoch(self.epoch)
        return sub

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images (N, 3, S, S) float in [0, 1] and labels (N,) at once (for fast training loops)."""
        return self.images.float() / 255, self.labels.clone()


def _box(mask: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        return torch.tensor([0, 0, 0, 0])
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


class TuxPaint(ClipArt):
    """A small photo transfer set ("Caltech-like", §5.2): 8 classes x 18 Tux Paint photo cut-outs (GPL-2).

    Explained in the chapter "Experiments". Every stamp is in the one split "all"; choosing
    few-shot training images per class is the experiment's job. Same interface as :class:`ClipArt`.
    """

    sprite_file = "tuxpaint/stamps.png"

    @renamed_keyword("image_size", "input_size")
    def __init__(self, split: str = "all", input_size: int = TEACHING_INPUT_SIZE, renders: int = 1, seed: int = 0,
                 data_dir: str | Path | None = None, epoch: int = 0):
        if split != "all":
            raise ValueError(f"the tuxpaint set has one split, 'all'; got {split!r}")
        super().__init__("train", input_size, renders, seed, data_dir, epoch)
        self.split = "all"


class Preprocess(nn.Module):
    """The input transform of §3: subtract the per-pixel mean image, then divide by a per-channel std.

    Explained in the chapter "The network". The paper subtracts the per-pixel mean only (pixels in
    [0, 255]); dividing by the channel std (a departure) puts the input at unit scale for any net width.
    Input (N, 3, S, S) float pixels in [0, 1]; output the same shape, roughly zero mean and unit variance.
    Integer images (uint8 0-255), values outside [0, 1] (beyond PIXEL_TOLERANCE) and NaN/inf raise,
    naming the fix; ``std`` must be > 0 (a constant channel cannot be normalised).
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        for name, t in (("mean", mean), ("std", std)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if mean.dim() != 3 or mean.shape[0] != 3 or std.shape != (3,):
            raise ValueError(f"mean must be (3, S, S) and std (3,); got {tuple(mean.shape)} and {tuple(std.shape)}")
        mean, std = mean.detach().float(), std.detach().float()
        _check_pixels("mean", mean, "(3, S, S), the mean image,")
        if not (torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"std must be finite and > 0 for each of the 3 channels; got {std.tolist()} "
                             f"(0: the channel is constant in the images fitted, e.g. fewer than 2 different images)")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std.view(3, 1, 1))

    @classmethod
    def fit(cls, images: torch.Tensor) -> "Preprocess":
        """Statistics of a stack of images (N, 3, S, S), float pixels in [0, 1], N >= 2 and not all alike."""
        _check_pixels("images", images, "(N, 3, S, S)")
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] < 1:
            raise ValueError(f"images must be a stack (N, 3, S, S) with N >= 1; got {tuple(images.shape)}")
        images = images.detach().to(torch.promote_types(images.dtype, torch.float32))
        mean = images.mean(0)
        std = (images - mean).pow(2).mean((0, 2, 3)).sqrt()
        return cls(mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) float pixels in [0, 1] (float64/float16 too) -> the network's input, float32 or wider."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor (N, 3, S, S); got {type(x).__name__}")
        if x.shape[-3:] != self.mean.shape:
            raise ValueError(f"images must be (N, {', '.join(map(str, self.mean.shape))}) to match the "
                             f"mean image; got {tuple(x.shape)}")
        _check_pixels("images", x, "(N, 3, S, S)")
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (for display)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor (N, 3, S, S); got {type(x).__name__}")
        if x.shape[-3:] != self.mean.shape:
            raise ValueError(f"x must be a preprocessed batch (N, {', '.join(map(str, self.mean.shape))}); "
                             f"got {tuple(x.shape)}")
        return x * self.std + self.mean


def fashion_mnist(split: str = "train", root: str | Path = "/usr/share/datasets/fashion-mnist",
                  cache: str | Path | None = None):
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``).

    Explained in the chapter "Training ZFNet". torchvision only reads uncompressed files in
    ``<cache>/FashionMNIST/raw``; Debian ships re-compressed .gz files (their checksums differ from
    torchvision's), so we gunzip them into ``cache`` once, and again when the source files change (the cache
    records which file each came from). Nothing is downloaded. A damaged .gz or IDX file raises
    :class:`DataIntegrityError` naming it.
    """
    from torchvision import datasets, transforms
    if not isinstance(split, str) or split not in ("train", "test"):
        raise ValueError(f"Fashion-MNIST has splits 'train' and 'test'; got {split!r}")
    root = _check_folder("root", root)
    cache = _check_folder("cache", cache, allow_none=True)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    missing = [n for n in names if not (root / f"{n}.gz").is_file()]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST files {missing} not found in {root}; on Debian/Ubuntu run "
                                f"`apt-get install dataset-fashion-mnist`, or pass root= to a folder holding them")
    cache = cache if cache is not None else Path.home() / ".cache" / "zfviz"
    raw = cache / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for n in names:
        # The cache remembers which .gz each file came from: another root (or a changed file) is unpacked afresh.
        src_path = (root / f"{n}.gz").resolve()
        st = src_path.stat()
        stamp = json.dumps({"source": str(src_path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
        if not ((raw / n).is_file() and (raw / f"{n}.from").is_file() and (raw / f"{n}.from").read_text() == stamp):
            try:
                with gzip.open(src_path) as src, open(raw / f"{n}.part", "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError, zlib.error) as e:
                (raw / f"{n}.part").unlink(missing_ok=True)
                raise DataIntegrityError(f"Fashion-MNIST file {src_path} is damaged: {type(e).__name__}: {e}; "
                                         f"reinstall it (`apt-get install --reinstall dataset-fashion-mnist`)") from e
            (raw / f"{n}.part").replace(raw / n)
            (raw / f"{n}.from").write_text(stamp)
    try:
        return datasets.FashionMNIST(cache, train=(split == "train"), download=False,
                                     transform=transforms.ToTensor())
    except (AssertionError, ValueError, RuntimeError) as e:
        raise DataIntegrityError(f"the Fashion-MNIST files in {root} (unpacked into {raw}) are not IDX files of "
                                 f"images and labels ({type(e).__name__}: {e}); reinstall them "
                                 f"(`apt-get install --reinstall dataset-fashion-mnist`)") from e


@renamed_keyword("image_size", "input_size")
def image_folder(root: str | Path, input_size: int = 224, train: bool = False):
    """Any ``ImageFolder`` tree (ImageNet, Imagenette, Caltech...) with the paper's preprocessing: resize the
    short side to 256/224 * input_size, then the centre crop of input_size (``train=False``), or a random
    crop of input_size, flipped left-right half the time (``train=True``, the paper's sub-crops with flips).
    Images (3, input_size, input_size) in [0, 1]; ``image_size=``, the old keyword, still works (deprecated).

    Explained in the chapter "Training ZFNet". A root without class folders, or a class folder without image
    files, raises ValueError naming the root; an image that cannot be read (truncated, damaged, not an image)
    raises :class:`DataIntegrityError` naming its path when it is loaded. 16-bit greyscale images are scaled
    to 8 bits (torchvision's own loader clips them to white).
    """
    from torchvision import datasets, transforms
    root = _check_folder("root", root)
    input_size = check_int("input_size", input_size, 1)
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"train must be True or False; got {train!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; expected root/<class>/<image files>")
    with os.scandir(root) as entries:
        has_classes = any(entry.is_dir() for entry in entries)
    if not has_classes:
        raise ValueError(f"image folder {root} holds no class folders; expected root/<class>/<image files>, "
                         f"one subfolder per class")
    short = round(input_size * 256 / 224)
    crop = ([transforms.RandomCrop(input_size), transforms.RandomHorizontalFlip()] if train
            else [transforms.CenterCrop(input_size)])
    try:
        return datasets.ImageFolder(root, transform=transforms.Compose([transforms.Resize(short), *crop,
                                                                        transforms.ToTensor()]),
                                    loader=_load_image)
    except FileNotFoundError as e:       # torchvision: a class folder without any image file
        raise ValueError(f"image folder {root}: {e}; expected root/<class>/<image files>") from e


def _load_image(path: str) -> Image.Image:
    """An ImageFolder's loader: the image as 8-bit RGB, or DataIntegrityError naming the file and what is wrong.

    (torchvision's own loader raises PIL's errors, which do not name the file, and turns 16-bit greyscale into
    white: ``convert("RGB")`` clips it at 255.)
    """
    try:
        with open(path, "rb") as f:
            im = Image.open(f)
            if im.mode.startswith("I;16"):                     # 16-bit greyscale: 0..65535 -> 0..255
                im = Image.fromarray((np.asarray(im, dtype=np.float64) / 257).round().astype(np.uint8))
            elif im.mode in ("I", "F"):
                raise DataIntegrityError(f"image {path} has {im.mode!r} pixels (32-bit, range unknown); "
                                         f"save it as 8-bit RGB (or greyscale) first")
            return im.convert("RGB")
    except (FileNotFoundError, PermissionError, DataIntegrityError):
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise DataIntegrityError(f"image {path} cannot be read, it is damaged or not an image "
                                 f"({type(e).__name__}: {e}); replace or delete it") from e


def ten_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """The paper's 10 sub-crops: the four corners and the centre, each also flipped left-right.

    Explained in the chapter "Training ZFNet". ``images`` (N, C, H, W) -> (N, 10, C, size, size): top-left,
    top-right, bottom-left, bottom-right, centre of the image, then the same five of the flipped image. At the
    paper's scale H = W = 256 and size = 224. ``size`` must be an int in 1..min(H, W).

    Not torchvision's ``ten_crop``, on purpose: that one flips each crop (the flipped corners come in mirrored
    order) and rounds the centre's offset half to even, so where H - size or W - size is odd its centre crops
    differ from these by a pixel; the book's shipped results were made with these. Where both margins are even
    the ten crops are the same set (``tests/test_data.py`` checks both facts).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    h, w = images.shape[-2:]
    size = check_int("size", size, 1, min(h, w), " (the image side)")
    top, left = (h - size) // 2, (w - size) // 2
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    mirrored = images.flip(-1)
    crops = [picture[..., y:y + size, x:x + size] for picture in (images, mirrored) for y, x in corners]
    return torch.stack(crops, dim=1)


DATASETS = {"clipart": ClipArt, "tuxpaint": TuxPaint, "fashion-mnist": fashion_mnist, "imagefolder": image_folder}


@renamed_keyword("image_size", "input_size")
def load_dataset(name: str, split: str | None = None, **kwargs):
    """Load a data set by name: "clipart" (default of the book), "tuxpaint", "fashion-mnist", "imagefolder".

    Explained in the chapter "The network". ``split`` is passed on where the set has splits;
    other keyword arguments go to the set's constructor (e.g. ``input_size``, ``root``).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a str such as 'train' or 'val', or None; got {type(split).__name__}")
    if name == "imagefolder":
        if "root" not in kwargs:
            raise ValueError("dataset 'imagefolder' needs root=<folder holding one subfolder per class>")
        if split is not None:
            kwargs["root"] = Path(kwargs["root"]) / split
        return image_folder(**kwargs)
    if split is not None:
        kwargs["split"] = split
    return DATASETS[name](**kwargs)
