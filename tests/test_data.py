"""zfviz.data: determinism, disjoint splits, compositing against a direct computation, the manifest."""
import gzip
import shutil
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from zfviz import data as zdata
from zfviz.data import ClipArt, DataIntegrityError, Preprocess, TuxPaint, composite, load_dataset, ten_crops


@pytest.fixture(scope="module")
def val():
    return ClipArt("val", image_size=64, renders=2)


def test_same_seed_same_validation_set(val):
    again = ClipArt("val", image_size=64, renders=2)
    assert torch.equal(val.images, again.images) and torch.equal(val.labels, again.labels)
    assert torch.equal(val.masks, again.masks)
    other = ClipArt("val", image_size=64, renders=2, seed=1)
    assert not torch.equal(val.images, other.images)


def test_training_set_is_fresh_each_epoch_and_reproducible():
    a = ClipArt("train", image_size=48, renders=1)
    first = a.images.clone()
    a.set_epoch(1)
    assert not torch.equal(first, a.images)
    a.set_epoch(0)
    assert torch.equal(first, a.images)


def test_splits_are_disjoint_and_balanced(val):
    sources = {s: set(ClipArt(s, image_size=32).sprite_sources) for s in ("train", "val", "test")}
    assert not (sources["train"] & sources["val"]) and not (sources["train"] & sources["test"])
    assert not (sources["val"] & sources["test"])
    assert [len(v) for v in sources.values()] == [380, 80, 80]
    assert torch.bincount(val.labels).tolist() == [16] * 10
    assert len(val.classes) == 10 and len(val) == 160


def test_masks_and_boxes_locate_the_object(val):
    area = val.masks.float().mean((1, 2))        # line drawings cover little: thin strokes
    assert (area > 0).all() and (area < 0.95).all() and area.median() > 0.1
    box = val.boxes.float()
    box_area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) / 64 ** 2
    assert (box_area > 0.02).all() and box_area.median() > 0.25   # objects fill much of the frame
    for mask, (x0, y0, x1, y1) in zip(val.masks, val.boxes.tolist()):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert (x0, y0, x1, y1) == (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
    image, label = val[3]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert label == int(val.labels[3])


def test_composite_matches_direct_alpha_blend():
    """Identity placement (scale 1, no rotation, centred) must equal out = a*rgb + (1-a)*bg exactly."""
    g = torch.Generator().manual_seed(0)
    sprite = torch.rand(2, 4, 16, 16, generator=g)
    back = torch.rand(2, 3, 16, 16, generator=g)
    zero = torch.zeros(2)
    img, mask = composite(sprite, back, torch.ones(2), zero, torch.zeros(2, 2), torch.zeros(2, dtype=torch.bool), 16)
    a = sprite[:, 3:]
    assert torch.allclose(img, a * sprite[:, :3] + (1 - a) * back, atol=1e-5)
    assert torch.equal(mask, sprite[:, 3] > 0.5)
    flipped, _ = composite(sprite, back.flip(-1), torch.ones(2), zero, torch.zeros(2, 2), torch.ones(2, dtype=torch.bool), 16)
    assert torch.allclose(flipped.flip(-1), img, atol=1e-5)
    # Half scale: the sprite lands in the central 8x8 block; outside it the background is untouched.
    small, m = composite(sprite, back, torch.full((2,), 0.5), zero, torch.zeros(2, 2), torch.zeros(2, dtype=torch.bool), 16)
    assert torch.allclose(small[..., :3, :], back[..., :3, :]) and not m[:, :4].any()


def test_preprocess_normalises_and_inverts(val):
    x = val.tensors()[0]
    p = Preprocess.fit(x)
    y = p(x)
    assert y.mean().abs() < 1e-4
    assert torch.allclose(y.pow(2).mean((0, 2, 3)).sqrt(), torch.ones(3), atol=1e-4)
    assert torch.allclose(p.inverse(y), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"images must be \(N, 3, 64, 64\)"):
        p(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="mean must be"):
        Preprocess(torch.zeros(64, 64), torch.ones(3))


def test_tuxpaint_transfer_set():
    t = TuxPaint(image_size=32)
    assert len(t) == 144 and len(t.classes) == 8
    assert torch.bincount(t.labels).tolist() == [18] * 8
    with pytest.raises(ValueError, match="one split, 'all'"):
        TuxPaint("train")


@pytest.mark.parametrize("call, exc, match", [
    (lambda: load_dataset("imagenet-2012"), ValueError, "unknown dataset 'imagenet-2012'; choose one of"),
    (lambda: ClipArt("validation"), ValueError, r"unknown split 'validation'; choose one of \('train', 'val', 'test'\)"),
    (lambda: ClipArt("val", image_size=8), ValueError, "image_size must be an int >= 16"),
    (lambda: ClipArt("val", renders=0), ValueError, "renders must be an int >= 1"),
    (lambda: load_dataset("imagefolder", "val"), ValueError, "needs root="),
])
def test_bad_dataset_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.fixture
def data_copy(tmp_path):
    """A private copy of data/ (sprites, backgrounds, manifest) that a test may damage."""
    for rel in ("MANIFEST.tsv", "clipart/sprites.png", "clipart/sprites.json",
                "backgrounds/photos.jpg", "backgrounds/photos.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(zdata.DATA_DIR / rel, tmp_path / rel)
    return tmp_path


def test_manifest_accepts_intact_copy(data_copy):
    assert len(ClipArt("test", image_size=32, data_dir=data_copy)) == 320


def test_manifest_catches_a_corrupted_file(data_copy):
    path = data_copy / "clipart" / "sprites.png"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match=r"sprites\.png is corrupted: sha256"):
        ClipArt("val", data_dir=data_copy)


def test_manifest_catches_a_missing_file(data_copy):
    (data_copy / "backgrounds" / "photos.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"photos\.jpg is missing.*scripts/build_data\.py"):
        ClipArt("val", data_dir=data_copy)


def test_missing_manifest_and_unlisted_files(data_copy):
    with pytest.raises(DataIntegrityError, match="not listed"):
        zdata.verify("clipart/extra.png", data_copy)
    (data_copy / "MANIFEST.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="MANIFEST.tsv is missing"):
        zdata.verify("clipart/sprites.png", data_copy)


def _idx(path, array):
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes())


def test_fashion_mnist_from_debian_layout(tmp_path):
    """A tiny fixture in the Debian package's layout (gzipped IDX files), read without network."""
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    src = tmp_path / "debian"
    src.mkdir()
    for prefix in ("train", "t10k"):
        _idx(src / f"{prefix}-images-idx3-ubyte.gz", imgs)
        _idx(src / f"{prefix}-labels-idx1-ubyte.gz", labels)
    ds = zdata.fashion_mnist("test", root=src, cache=tmp_path / "cache")
    assert len(ds) == 5
    x, y = ds[2]
    assert y == 4 and x.shape == (1, 28, 28)
    assert torch.allclose(x[0], torch.from_numpy(imgs[2]).float() / 255)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        zdata.fashion_mnist(root=tmp_path / "nowhere")


def test_image_folder(tmp_path):
    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / "val" / cls).mkdir(parents=True)
        Image.new("RGB", (80, 60), colour).save(tmp_path / "val" / cls / "a.png")
    ds = load_dataset("imagefolder", "val", root=tmp_path, image_size=48)
    assert ds.classes == ["cat", "dog"]
    x, y = ds[1]
    assert x.shape == (3, 48, 48) and y == 1 and torch.allclose(x[2], torch.ones(48, 48))
    with pytest.raises(FileNotFoundError, match="expected root/<class>/<image files>"):
        load_dataset("imagefolder", root=tmp_path / "missing")


def test_ten_crops_match_torchvision_and_the_corners_by_hand():
    from torchvision.transforms.v2 import functional as TF
    x = torch.rand(2, 3, 17, 20)
    crops = ten_crops(x, 11)
    assert crops.shape == (2, 10, 3, 11, 11)
    assert torch.equal(crops, torch.stack(list(TF.ten_crop(x, [11, 11])), dim=1))
    assert torch.equal(crops[:, 3], x[..., 6:, 9:])                    # bottom-right corner
    assert torch.equal(crops[:, 5], x[..., :11, 9:].flip(-1))          # top-left of the mirrored image


@pytest.mark.parametrize("size", [0, 18, 2.5])
def test_ten_crops_bad_size(size):
    with pytest.raises(ValueError, match="size must be an int in"):
        ten_crops(torch.rand(1, 3, 17, 20), size)


def test_locate_finds_a_point_of_the_drawing_in_every_render():
    # A synthetic sprite: one opaque white dot at a known tile point; composite it with each render's own
    # placement (flips and tilts included) and compare the dot's centre with locate().
    ds = ClipArt("val")
    t = ds.sprites.shape[-1]
    renders = [0, 5, 17, 100, 200]
    assert ds.placement["flip"][renders].any() and not ds.placement["flip"][renders].all()
    for u, v in [(0.25, 0.3), (0.7, 0.8)]:
        i, j = int(v * t), int(u * t)
        sprite = torch.zeros(1, 4, t, t)
        sprite[0, :, i - 3:i + 4, j - 3:j + 4] = 1.0
        uv = ((j + 0.5) / t, (i + 0.5) / t)
        where = ds.locate(torch.tensor(renders), torch.tensor([uv] * len(renders)))
        for r, (x, y) in zip(renders, where.tolist()):
            p = {name: value[r:r + 1] for name, value in ds.placement.items()}
            image, _ = composite(sprite, torch.zeros(1, 3, 112, 112), p["scale"], p["angle"], p["center"],
                                 p["flip"], 112)
            ys, xs = torch.nonzero(image[0].sum(0) > 1.0, as_tuple=True)
            assert abs(xs.float().mean().item() + 0.5 - x) < 0.75 and abs(ys.float().mean().item() + 0.5 - y) < 0.75
    assert ds.locate(3, (0.5, 0.5)).shape == (2,)
    with pytest.raises(ValueError, match="index must be in"):
        ds.locate(len(ds), (0.5, 0.5))
    with pytest.raises(ValueError, match="uv must be"):
        ds.locate(0, (0.5, 0.5, 0.5))


def test_subset_renders_only_the_chosen_drawings_and_new_epochs_differ():
    t = TuxPaint(image_size=32, renders=2)
    sub = t.subset([5, 40, 100])
    assert sub.sprite_labels.tolist() == t.sprite_labels[[5, 40, 100]].tolist()
    assert sub.labels.tolist() == sub.sprite_labels.repeat(2).tolist() and len(sub) == 6
    assert len(t) == 288                                     # the original is untouched
    first = sub.images.clone()
    sub.set_epoch(1)                                         # TuxPaint renders like a training split
    assert not torch.equal(first, sub.images)
    with pytest.raises(ValueError, match=r"indices in \[0, 143\]"):
        t.subset([144])
