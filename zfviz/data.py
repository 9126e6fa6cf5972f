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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

__all__ = ["DATA_DIR", "DataIntegrityError", "verify", "sha256_file", "data_path", "load_dataset", "DATASETS",
           "ClipArt", "TuxPaint", "Preprocess", "fashion_mnist", "image_folder", "composite", "ten_crops"]

DATA_DIR = Path(os.environ.get("ZFVIZ_DATA", Path(__file__).resolve().parents[1] / "data"))
SPLITS = ("train", "val", "test")
# TuxPaint's one split "all" is rendered as a training split (new composites for each epoch).
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "all": 0}
REBUILD = "python scripts/build_data.py"


class DataIntegrityError(ValueError):
    """A file in data/ does not match the sha256 recorded in data/MANIFEST.tsv (chapter "The network")."""


def sha256_file(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex sha256 of a file, read in 1 MB blocks; explained in the chapter "The network" (data/MANIFEST.tsv).

    ``algorithm`` names another ``hashlib`` digest, for files whose publishers give one (pytorchcv: sha1).
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(data_dir: Path) -> dict[str, str]:
    path = data_dir / "MANIFEST.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it lists the sha256 of every data file. "
                                f"Restore it from git or rebuild data/ with `{REBUILD}`.")
    rows = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            rel, _size, digest = line.split("\t")[:3]
            rows[rel] = digest
    return rows


_verified: dict[tuple, bool] = {}


def verify(rel: str, data_dir: Path | str | None = None) -> Path:
    """Return the path of ``data/<rel>`` after checking it against data/MANIFEST.tsv (sha256).

    Explained in the chapter "The network". Raises ``FileNotFoundError`` for a missing file and
    :class:`DataIntegrityError` (a ``ValueError``) for a corrupted or unlisted one, naming the file.
    A file is hashed once per process unless its size or modification time change.
    """
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    path = data_dir / rel
    expected = _manifest(data_dir).get(rel)
    if expected is None:
        raise DataIntegrityError(f"data/{rel} is not listed in {data_dir / 'MANIFEST.tsv'}; "
                                 f"refusing to read an unrecorded file")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} is missing; restore it from git or rebuild with `{REBUILD}`")
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, expected)
    if key not in _verified:
        actual = sha256_file(path)
        if actual != expected:
            raise DataIntegrityError(f"data file {path} is corrupted: sha256 {actual[:16]}... but "
                                     f"MANIFEST.tsv records {expected[:16]}...; restore it from git "
                                     f"or rebuild with `{REBUILD}`")
        _verified[key] = True
    return path


def data_path(rel: str) -> Path:
    """Verified path of a file under data/ (see :func:`verify`); explained in the chapter "The network"."""
    return verify(rel)


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
        scale: (N,) side of the sprite's tile as a fraction of the image side.
        angle: (N,) rotation in radians. center: (N, 2) tile centre (x, y) in [-1, 1] image coords.
        flip: (N,) bool, mirror the sprite left-right.
    Returns:
        images (N, 3, size, size) in [0, 1] and masks (N, size, size) bool (alpha > 0.5).
    """
    n = sprites.shape[0]
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx = torch.where(flip, -1.0, 1.0)
    # grid_sample maps each output pixel to a sprite coordinate: p_sprite = R(-a) (p_out - c) / s.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = sx * cos / scale, sx * sin / scale
    theta[:, 1, 0], theta[:, 1, 1] = -sin / scale, cos / scale
    theta[:, :, 2] = -(theta[:, :, :2] @ center.unsqueeze(-1)).squeeze(-1)
    grid = F.affine_grid(theta, (n, 4, size, size), align_corners=False)
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


class ClipArt(Dataset):
    """The book's default data set: 10 classes of clip-art objects on varied backgrounds.

    Explained in the chapter "The network".

    Args:
        split: "train", "val" or "test" (sprites are disjoint between splits).
        image_size: side of the square images (112 for the teaching net, 224 as in the paper).
        renders: how many composites of each sprite the split holds.
        seed: validation/test images depend only on (seed, split); training images also on the epoch.
        data_dir: folder holding MANIFEST.tsv and clipart/ (default: the repository's data/).

    ``dataset[i]`` is ``(image, label)``: image (3, S, S) float in [0, 1], label an int.
    ``dataset.masks[i]`` (S, S) bool and ``dataset.boxes[i]`` (x0, y0, x1, y1) locate the object.
    """

    sprite_file = "clipart/sprites.png"
    min_scale, max_scale = 0.55, 1.0      # tile side / image side; the object fills ~45-95% of it
    max_angle = math.radians(20)

    def __init__(self, split: str = "train", image_size: int = 112, renders: int = 4, seed: int = 0,
                 data_dir: str | Path | None = None, epoch: int = 0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
        if not isinstance(renders, int) or renders < 1:
            raise ValueError(f"renders must be an int >= 1, got {renders!r}")
        self.split, self.image_size, self.renders, self.seed = split, image_size, renders, seed
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
        return self.images[i].float() / 255, int(self.labels[i])

    def set_epoch(self, epoch: int) -> None:
        """Render the split: fixed for val/test, new composites for each training epoch."""
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
            backs = _backgrounds(self.photos, {k: v[sl] for k, v in back.items()}, self.image_size)
            im, mk = composite(self.sprites[which[sl]].float() / 255, backs, scale[sl], angle[sl],
                               center[sl], flip[sl], self.image_size)
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
        idx = torch.as_tensor(index, dtype=torch.long)
        uv = torch.as_tensor(uv, dtype=torch.float32)
        if uv.shape[-1] != 2 or uv.dim() > 2 or idx.dim() > 1:
            raise ValueError(f"uv must be (2,) or (K, 2) and index an int or (K,); got uv {tuple(uv.shape)}, "
                             f"index {tuple(idx.shape)}")
        if len(self) and not (0 <= int(idx.min()) and int(idx.max()) < len(self)):
            raise ValueError(f"index must be in [0, {len(self) - 1}], got {index!r}")
        p = self.placement
        s, a, c = p["scale"][idx], p["angle"][idx], p["center"][idx]
        sx = torch.where(p["flip"][idx], -1.0, 1.0)
        u, v = 2 * uv[..., 0] - 1, 2 * uv[..., 1] - 1               # tile coordinates in [-1, 1]
        # composite() samples the sprite at A (p_out - c) with A = M / s, M = [[sx cos, sx sin], [-sin, cos]];
        # M^-1 = [[sx cos, -sin], [sx sin, cos]] since det M = sx = +-1.
        x = c[..., 0] + s * (sx * torch.cos(a) * u - torch.sin(a) * v)
        y = c[..., 1] + s * (sx * torch.sin(a) * u + torch.cos(a) * v)
        return torch.stack([(x + 1) / 2 * self.image_size, (y + 1) / 2 * self.image_size], dim=-1)

    def subset(self, sprites) -> "ClipArt":
        """A copy that renders only the drawings ``sprites`` (indices into ``self.sprites``), in that order.

        Explained in the chapter "§5 Experiments" (training on a few images per class). Same size, renders,
        seed and epoch; its images are new renders (the placements depend on the number of drawings).
        """
        idx = torch.as_tensor(sprites, dtype=torch.long).flatten()
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

    def __init__(self, split: str = "all", image_size: int = 112, renders: int = 1, seed: int = 0,
                 data_dir: str | Path | None = None, epoch: int = 0):
        if split != "all":
            raise ValueError(f"the tuxpaint set has one split, 'all'; got {split!r}")
        super().__init__("train", image_size, renders, seed, data_dir, epoch)
        self.split = "all"


class Preprocess(nn.Module):
    """The input transform of §3: subtract the per-pixel mean image, then divide by a per-channel std.

    Explained in the chapter "The network". The paper subtracts the per-pixel mean only (pixels in
    [0, 255]); dividing by the channel std (a departure) puts the input at unit scale for any net width.
    Input (N, 3, S, S) in [0, 1]; output the same shape, roughly zero mean and unit variance.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        if mean.dim() != 3 or mean.shape[0] != 3 or std.shape != (3,):
            raise ValueError(f"mean must be (3, S, S) and std (3,); got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().view(3, 1, 1))

    @classmethod
    def fit(cls, images: torch.Tensor) -> "Preprocess":
        """Statistics of a stack of images (N, 3, S, S) in [0, 1]."""
        mean = images.mean(0)
        std = (images - mean).pow(2).mean((0, 2, 3)).sqrt()
        return cls(mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3:] != self.mean.shape:
            raise ValueError(f"images must be (N, {', '.join(map(str, self.mean.shape))}) to match the "
                             f"mean image; got {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (for display)."""
        return x * self.std + self.mean


def fashion_mnist(split: str = "train", root: str | Path = "/usr/share/datasets/fashion-mnist",
                  cache: str | Path | None = None):
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``).

    Explained in the chapter "Training ZFNet". torchvision only reads uncompressed files in
    ``<cache>/FashionMNIST/raw``; Debian ships re-compressed .gz files (their checksums differ from
    torchvision's), so we gunzip them into ``cache`` once. Nothing is downloaded.
    """
    from torchvision import datasets, transforms
    if split not in ("train", "test"):
        raise ValueError(f"Fashion-MNIST has splits 'train' and 'test'; got {split!r}")
    root = Path(root)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    missing = [n for n in names if not (root / f"{n}.gz").is_file()]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST files {missing} not found in {root}; on Debian/Ubuntu run "
                                f"`apt-get install dataset-fashion-mnist`, or pass root= to a folder holding them")
    cache = Path(cache) if cache is not None else Path.home() / ".cache" / "zfviz"
    raw = cache / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (raw / n).is_file():
            with gzip.open(root / f"{n}.gz") as src, open(raw / f"{n}.part", "wb") as dst:
                shutil.copyfileobj(src, dst)
            (raw / f"{n}.part").rename(raw / n)
    return datasets.FashionMNIST(cache, train=(split == "train"), download=False,
                                 transform=transforms.ToTensor())


def image_folder(root: str | Path, image_size: int = 224, train: bool = False):
    """Any ``ImageFolder`` tree (ImageNet, Imagenette, Caltech...) with the paper's preprocessing: resize the
    short side to 256/224 * image_size, then the centre crop of image_size (``train=False``), or a random
    crop of image_size, flipped left-right half the time (``train=True``, the paper's sub-crops with flips).
    Images (3, image_size, image_size) in [0, 1].

    Explained in the chapter "Training ZFNet".
    """
    from torchvision import datasets, transforms
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; expected root/<class>/<image files>")
    short = round(image_size * 256 / 224)
    crop = ([transforms.RandomCrop(image_size), transforms.RandomHorizontalFlip()] if train
            else [transforms.CenterCrop(image_size)])
    return datasets.ImageFolder(root, transform=transforms.Compose([transforms.Resize(short), *crop,
                                                                    transforms.ToTensor()]))


def ten_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """The paper's 10 sub-crops: the four corners and the centre, each also flipped left-right.

    Explained in the chapter "Training ZFNet". ``images`` (N, C, H, W) -> (N, 10, C, size, size), in
    torchvision's ``TenCrop`` order: top-left, top-right, bottom-left, bottom-right, centre, then the
    same five of the flipped image. At the paper's scale H = W = 256 and size = 224.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    h, w = images.shape[-2:]
    if not isinstance(size, int) or not 1 <= size <= min(h, w):
        raise ValueError(f"size must be an int in [1, {min(h, w)}] (the image side), got {size!r}")
    top, left = (h - size) // 2, (w - size) // 2     # torchvision's centre crop rounds the same way
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    five = [images[..., y:y + size, x:x + size] for y, x in corners]
    mirrored = images.flip(-1)
    five += [mirrored[..., y:y + size, x:x + size] for y, x in corners]
    return torch.stack(five, dim=1)


DATASETS = {"clipart": ClipArt, "tuxpaint": TuxPaint, "fashion-mnist": fashion_mnist, "imagefolder": image_folder}


def load_dataset(name: str, split: str | None = None, **kwargs):
    """Load a data set by name: "clipart" (default of the book), "tuxpaint", "fashion-mnist", "imagefolder".

    Explained in the chapter "The network". ``split`` is passed on where the set has splits;
    other keyword arguments go to the set's constructor (e.g. ``image_size``, ``root``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if name == "imagefolder":
        if "root" not in kwargs:
            raise ValueError("dataset 'imagefolder' needs root=<folder holding one subfolder per class>")
        if split is not None:
            kwargs["root"] = Path(kwargs["root"]) / split
        return image_folder(**kwargs)
    if split is not None:
        kwargs["split"] = split
    return DATASETS[name](**kwargs)
