"""zfviz.data: determinism, disjoint splits, compositing against a direct computation, the manifest."""
import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zfviz import data as zdata
from zfviz.data import ClipArt, DataIntegrityError, Preprocess, TuxPaint, composite, load_dataset, ten_crops

REPO = Path(zdata.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def val():
    return ClipArt("val", input_size=64, renders=2)


def test_same_seed_same_validation_set(val):
    again = ClipArt("val", input_size=64, renders=2)
    assert torch.equal(val.images, again.images) and torch.equal(val.labels, again.labels)
    assert torch.equal(val.masks, again.masks)
    other = ClipArt("val", input_size=64, renders=2, seed=1)
    assert not torch.equal(val.images, other.images)


def test_training_set_is_fresh_each_epoch_and_reproducible():
    a = ClipArt("train", input_size=48, renders=1)
    first = a.images.clone()
    a.set_epoch(1)
    assert not torch.equal(first, a.images)
    a.set_epoch(0)
    assert torch.equal(first, a.images)


def test_splits_are_disjoint_and_balanced(val):
    sources = {s: set(ClipArt(s, input_size=32).sprite_sources) for s in ("train", "val", "test")}
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
    t = TuxPaint(input_size=32)
    assert len(t) == 144 and len(t.classes) == 8
    assert torch.bincount(t.labels).tolist() == [18] * 8
    with pytest.raises(ValueError, match="one split, 'all'"):
        TuxPaint("train")


@pytest.mark.parametrize("call, exc, match", [
    (lambda: load_dataset("imagenet-2012"), ValueError, "unknown dataset 'imagenet-2012'; choose one of"),
    (lambda: ClipArt("validation"), ValueError, r"unknown split 'validation'; choose one of \('train', 'val', 'test'\)"),
    (lambda: ClipArt("val", input_size=8), ValueError, "input_size must be an int >= 16"),
    (lambda: ClipArt("val", renders=0), ValueError, "renders must be an int >= 1"),
    (lambda: load_dataset("imagefolder", "val"), ValueError, "needs root="),
    (lambda: load_dataset(None), ValueError, "unknown dataset None; choose one of"),
    (lambda: load_dataset("clipart", 1), TypeError, "split must be a str .* got int"),
    (lambda: ClipArt("bogus"), ValueError, r"unknown split 'bogus'; choose one of"),
    (lambda: ClipArt(None), ValueError, r"unknown split None; choose one of"),
    (lambda: ClipArt("val", renders=True), TypeError, "renders must be an int >= 1 .*got True"),
    (lambda: ClipArt("val", renders=1.5), TypeError, "renders must be an int >= 1 .*got 1.5"),
    (lambda: ClipArt("val", input_size=16.0), TypeError, "input_size must be an int >= 16; got 16.0"),
    (lambda: ClipArt("val", input_size=-112), ValueError, "input_size must be an int >= 16; got -112"),
    (lambda: ClipArt("val", seed=-1), ValueError, "seed must be an int >= 0; got -1"),
    (lambda: ClipArt("val", seed=0.5), TypeError, "seed must be an int >= 0; got 0.5"),
    (lambda: ClipArt("val", epoch=-1), ValueError, "epoch must be an int >= 0; got -1"),
    (lambda: ClipArt("val", data_dir=3), TypeError, r"data_dir must be a folder path .* got int"),
    (lambda: ClipArt("val", data_dir="/nonexistent"), FileNotFoundError, r"/nonexistent/MANIFEST\.tsv is missing"),
    (lambda: TuxPaint("train"), ValueError, "one split, 'all'"),
    (lambda: zdata.fashion_mnist("val"), ValueError, "splits 'train' and 'test'; got 'val'"),
    (lambda: zdata.fashion_mnist(root=None), TypeError, "root must be a folder path .* got NoneType"),
    (lambda: zdata.fashion_mnist(root="/nonexistent"), FileNotFoundError, "not found in /nonexistent.*apt-get install"),
    (lambda: zdata.image_folder(None), TypeError, "root must be a folder path .* got NoneType"),
    (lambda: zdata.image_folder("/tmp", input_size=0), ValueError, "input_size must be an int >= 1; got 0"),
    (lambda: zdata.image_folder("/tmp", input_size=True), TypeError, "input_size must be an int >= 1; got True"),
    (lambda: zdata.image_folder("/tmp", train="yes"), TypeError, "train must be True or False; got 'yes'"),
    (lambda: zdata.verify(3), TypeError, "rel must be a str path inside data/"),
    (lambda: zdata.verify("clipart/sprites.png", 3), TypeError, "data_dir must be a folder path"),
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
    assert len(ClipArt("test", input_size=32, data_dir=data_copy)) == 320


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
    ds = load_dataset("imagefolder", "val", root=tmp_path, input_size=48)
    assert ds.classes == ["cat", "dog"]
    x, y = ds[1]
    assert x.shape == (3, 48, 48) and y == 1 and torch.allclose(x[2], torch.ones(48, 48))
    with pytest.raises(FileNotFoundError, match="expected root/<class>/<image files>"):
        load_dataset("imagefolder", root=tmp_path / "missing")


def test_ten_crops_match_torchvision_and_slices_by_hand():
    from torchvision.transforms.v2 import functional as TF
    x = torch.rand(2, 3, 17, 20)
    crops = ten_crops(x, 11)
    assert crops.shape == (2, 10, 3, 11, 11)
    assert torch.equal(crops, torch.stack(list(TF.ten_crop(x, [11, 11])), dim=1))
    # Independently, by slicing: corners, then the centre (torchvision rounds (17 - 11) / 2 = 3 and
    # (20 - 11) / 2 = 4.5 to 4), then the same five of the mirrored image.
    windows = [(slice(0, 11), slice(0, 11)), (slice(0, 11), slice(9, 20)), (slice(6, 17), slice(0, 11)),
               (slice(6, 17), slice(9, 20)), (slice(3, 14), slice(4, 15))]
    mirrored = x.flip(-1)
    by_hand = [x[..., ys, xs] for ys, xs in windows] + [mirrored[..., ys, xs] for ys, xs in windows]
    assert torch.equal(crops, torch.stack(by_hand, dim=1))
    assert torch.equal(crops[:, 5], x[..., :11, 9:].flip(-1))          # top-left of the mirrored image
    # Where a margin is 3 mod 4 torchvision rounds half its offset up ((17 - 10) / 2 = 3.5 -> 4): its centre crop
    # moves by a pixel, ours stays at the floor (3), as the shipped results were made.
    y = torch.rand(1, 3, 17, 17)
    ours, theirs = ten_crops(y, 10), torch.stack(list(TF.ten_crop(y, [10, 10])), dim=1)
    assert torch.equal(ours[:, [0, 1, 2, 3, 5, 6, 7, 8]], theirs[:, [0, 1, 2, 3, 5, 6, 7, 8]])
    assert torch.equal(ours[:, 4], y[..., 3:13, 3:13]) and torch.equal(theirs[:, 4], y[..., 4:14, 4:14])


@pytest.mark.parametrize("size, error", [(0, ValueError), (-3, ValueError), (18, ValueError), (21, ValueError),
                                         (2.5, TypeError), (True, TypeError), (None, TypeError)])
def test_ten_crops_bad_size(size, error):
    with pytest.raises(error, match=r"size must be an int in 1\.\.17 \(the image side\); got"):
        ten_crops(torch.rand(1, 3, 17, 20), size)


def test_file_hexdigest_and_sha256_file_match_hashlib(tmp_path):
    import hashlib
    blob = bytes(range(256)) * 5000                                     # 1.28 MB: more than one read block
    f = tmp_path / "blob.bin"
    f.write_bytes(blob)
    assert zdata.sha256_file(f) == hashlib.sha256(blob).hexdigest() == zdata.file_hexdigest(f)
    assert zdata.file_hexdigest(str(f), "sha1") == hashlib.sha1(blob).hexdigest()   # pytorchcv's weights: sha1
    with pytest.raises(TypeError):
        zdata.sha256_file(f, algorithm="sha1")                          # sha256_file is sha256 only


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
            image, _ = composite(sprite, torch.zeros(1, 3, ds.input_size, ds.input_size), p["scale"], p["angle"],
                                 p["center"], p["flip"], ds.input_size)
            ys, xs = torch.nonzero(image[0].sum(0) > 1.0, as_tuple=True)
            assert abs(xs.float().mean().item() + 0.5 - x) < 0.75 and abs(ys.float().mean().item() + 0.5 - y) < 0.75
    assert ds.locate(3, (0.5, 0.5)).shape == (2,)
    with pytest.raises(ValueError, match="index must be in"):
        ds.locate(len(ds), (0.5, 0.5))
    with pytest.raises(ValueError, match="uv must be"):
        ds.locate(0, (0.5, 0.5, 0.5))


def test_subset_renders_only_the_chosen_drawings_and_new_epochs_differ():
    t = TuxPaint(input_size=32, renders=2)
    sub = t.subset([5, 40, 100])
    assert sub.sprite_labels.tolist() == t.sprite_labels[[5, 40, 100]].tolist()
    assert sub.labels.tolist() == sub.sprite_labels.repeat(2).tolist() and len(sub) == 6
    assert len(t) == 288                                     # the original is untouched
    first = sub.images.clone()
    sub.set_epoch(1)                                         # TuxPaint renders like a training split
    assert not torch.equal(first, sub.images)
    with pytest.raises(ValueError, match=r"indices in \[0, 143\]"):
        t.subset([144])


# ---------------------------------------------------------------- git must not touch data/ (issue 13)

def _git(*args, **kw):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True, **kw)


@pytest.fixture(scope="module")
def git_repo():
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the .gitattributes checks need it")
    try:
        top = _git("rev-parse", "--show-toplevel", text=True).stdout.strip()
    except subprocess.CalledProcessError:
        pytest.skip(f"{REPO} is not a git checkout (e.g. an sdist): no .gitattributes to check")
    if Path(top).resolve() != REPO:
        pytest.skip(f"{REPO} is not the root of its git checkout ({top})")
    return REPO


def _listed():
    return ["data/MANIFEST.tsv"] + [f"data/{rel}" for rel in zdata._manifest(zdata.DATA_DIR)]


def test_gitattributes_mark_every_data_file_as_not_text(git_repo):
    """Without this, Git for Windows (core.autocrlf=true) writes CRLF into the .json, the manifest and COPYING."""
    out = _git("check-attr", "-a", "--", *_listed(), text=True).stdout
    attrs = {}
    for line in out.splitlines():
        path, name, value = line.split(": ")
        attrs.setdefault(path, {})[name] = value
    for path in _listed():
        assert attrs.get(path, {}).get("text") == "unset", f"{path}: {attrs.get(path)} (needs -text in .gitattributes)"
    for code in ("zfviz/data.py", "book/network.ipynb"):           # the rest: LF everywhere
        assert "eol: lf" in _git("check-attr", "eol", "--", code, text=True).stdout


def test_a_windows_checkout_leaves_data_files_byte_exact(git_repo, tmp_path):
    """Check out the manifest and the text-like data files with Git for Windows' default, core.autocrlf=true:
    the bytes must be those stored in git (which MANIFEST.tsv hashes)."""
    tracked = set(_git("ls-files", "--", "data", text=True).stdout.split())
    small = [p for p in _listed() if p in tracked and (REPO / p).stat().st_size < 1 << 20]
    assert "data/MANIFEST.tsv" in small and "data/tuxpaint/COPYING" in small and len(small) >= 10
    _git("-c", "core.autocrlf=true", "checkout-index", f"--prefix={tmp_path}/", "--", *small)
    for p in small:
        assert (tmp_path / p).read_bytes() == _git("cat-file", "blob", f":{p}").stdout, p


def test_a_crlf_copy_of_a_data_file_is_refused_naming_it(data_copy):
    path = data_copy / "clipart" / "sprites.json"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(DataIntegrityError, match=r"clipart/sprites\.json is corrupted: \d+ bytes but MANIFEST"
                                                 r"\.tsv records \d+ \(its line endings were converted to CRLF"):
        zdata.verify("clipart/sprites.json", data_copy)
    with pytest.raises(DataIntegrityError, match=r"sprites\.json is corrupted"):
        ClipArt("val", data_dir=data_copy)


def test_a_same_size_corruption_is_caught_by_the_hash(data_copy):
    path = data_copy / "backgrounds" / "photos.json"
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"1", b"2", 1))
    with pytest.raises(DataIntegrityError, match=r"photos\.json is corrupted: sha256 [0-9a-f]{16}\.\.\. but"):
        zdata.verify("backgrounds/photos.json", data_copy)


# ---------------------------------------------------------------- a malformed MANIFEST.tsv (issue 13)

def _sprites_row():
    return next(line for line in (zdata.DATA_DIR / "MANIFEST.tsv").read_text().splitlines()
                if line.startswith("clipart/sprites.png\t"))


@pytest.mark.parametrize("edit, match", [
    (lambda row: row.rsplit("\t", 2)[0], r"line {n}: 3 tab-separated fields, expected 5"),
    (lambda row: row + "\textra", r"line {n}: 6 tab-separated fields, expected 5"),
    (lambda row: row.replace("\t", " "), r"line {n}: 1 tab-separated field, expected 5"),
    (lambda row: row.replace("1cb6121ae5", "1cb6121ae"), r"line {n}: sha256 '1cb6121ae596f.*' is not 64 hexadecimal"),
    (lambda row: row.replace("1cb6121ae5", "1cb6121ag5"), r"line {n}: sha256 '1cb6121ag5596.*' is not 64 hexadecimal"),
    (lambda row: row.replace("\t5315778\t", "\t5 MB\t"), r"line {n}: bytes '5 MB' is not a whole number"),
    (lambda row: row.replace("\t5315778\t", "\t-1\t"), r"line {n}: bytes '-1' is not a whole number"),
    (lambda row: row.replace("clipart/", "/clipart/", 1), r"line {n}: path '/clipart/sprites.png' is not a relative"),
    (lambda row: row.replace("clipart/", "../clipart/", 1), r"line {n}: path '\.\./clipart/sprites.png' is not a"),
    (lambda row: row.replace("clipart/", "clipart\\", 1), r"line {n}: path 'clipart\\\\sprites.png' is not a relative"),
    (lambda row: row.replace("clipart/", " clipart/", 1), r"line {n}: path ' clipart/sprites.png' is not a relative"),
    (lambda row: row.replace("clipart/sprites.png", "", 1), r"line {n}: path '' is not a relative"),
    (lambda row: row + "\n" + row, r"line {next}: clipart/sprites.png is listed twice \(first on line {n}\)"),
])
def test_a_malformed_manifest_line_names_the_manifest_and_the_line(data_copy, edit, match):
    manifest = data_copy / "MANIFEST.tsv"
    text = manifest.read_text()
    row = _sprites_row()
    n = text.splitlines().index(row) + 1
    manifest.write_text(text.replace(row, edit(row)))
    match = match.replace("{n}", str(n)).replace("{next}", str(n + 1))
    for rel in ("clipart/sprites.png", "backgrounds/photos.json"):     # any lookup reads the whole manifest
        with pytest.raises(DataIntegrityError, match=rf"{manifest}, {match}"):
            zdata.verify(rel, data_copy)


@pytest.mark.parametrize("edit", [
    lambda text: text.replace("\n", "\n\n"),                                  # blank lines
    lambda text: "# a comment\n#\n" + text + "# the end\n",                    # comments
    lambda text: text.replace("\n", "\r\n"),                                  # a CRLF manifest lists the same files
    lambda text: text.replace(_sprites_row().split("\t")[2], _sprites_row().split("\t")[2].upper()),
])
def test_comments_blank_lines_and_crlf_in_the_manifest_are_read_right(data_copy, edit):
    manifest = data_copy / "MANIFEST.tsv"
    manifest.write_bytes(edit(manifest.read_text()).encode())
    assert zdata._manifest(data_copy) == zdata._manifest(zdata.DATA_DIR)
    assert zdata.verify("clipart/sprites.png", data_copy) == data_copy / "clipart" / "sprites.png"


def test_every_shipped_file_matches_its_manifest_line():
    rows = zdata._manifest_rows(zdata.DATA_DIR)
    assert len(rows) >= 20
    for rel, (size, _digest) in rows.items():
        assert (zdata.DATA_DIR / rel).stat().st_size == size, rel
        zdata.verify(rel)


# ---------------------------------------------------------------- a user's ImageFolder with bad files (issue 13)

@pytest.fixture
def damaged_folder(tmp_path):
    root = tmp_path / "photos"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
    Image.new("RGB", (64, 48), (200, 10, 10)).save(root / "cat" / "good.jpg")
    raw = (root / "cat" / "good.jpg").read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(raw[:len(raw) // 2])
    (root / "dog" / "notes.jpg").write_text("this is a text file with a .jpg name\n")
    Image.new("RGB", (64, 48), (0, 0, 255)).save(root / "dog" / "good.png")
    raw = (root / "dog" / "good.png").read_bytes()
    (root / "dog" / "cut.png").write_bytes(raw[:60])
    return root


@pytest.mark.parametrize("name, what", [
    ("cat/truncated.jpg", r"cannot be read, it is damaged or not an image \(OSError: .*\)"),
    ("dog/notes.jpg", r"cannot be read, it is damaged or not an image \(UnidentifiedImageError"),
    ("dog/cut.png", r"cannot be read, it is damaged or not an image \("),
])
def test_a_damaged_image_in_an_image_folder_is_named(damaged_folder, name, what):
    ds = load_dataset("imagefolder", root=damaged_folder, input_size=32)
    index = [p for p, _ in ds.samples].index(str(damaged_folder / name))
    with pytest.raises(DataIntegrityError, match=rf"image {damaged_folder / name} {what}"):
        ds[index]
    good = [p for p, _ in ds.samples].index(str(damaged_folder / "cat" / "good.jpg"))
    assert ds[good][0].shape == (3, 32, 32)


def test_a_damaged_image_is_named_through_a_data_loader(damaged_folder):
    from torch.utils.data import DataLoader
    ds = zdata.image_folder(damaged_folder, input_size=32)
    with pytest.raises(DataIntegrityError, match=r"cat/truncated\.jpg cannot be read"):
        list(DataLoader(ds, batch_size=4, num_workers=0))


def test_a_16_bit_greyscale_png_is_scaled_not_clipped_to_white(tmp_path):
    (tmp_path / "grey").mkdir()
    Image.fromarray(np.full((40, 40), 30000, np.uint16)).save(tmp_path / "grey" / "deep.png")
    assert Image.open(tmp_path / "grey" / "deep.png").mode.startswith("I;16")
    x, _ = zdata.image_folder(tmp_path, input_size=32)[0]
    assert torch.allclose(x, torch.full_like(x, round(30000 / 257) / 255))


@pytest.mark.parametrize("make, match", [
    (lambda root: None, r"holds no class folders; expected root/<class>/<image files>"),
    (lambda root: (root / "a.jpg").write_bytes(b"x"), r"holds no class folders"),
    (lambda root: ((root / "cat").mkdir(), (root / "cat" / "a.txt").write_text("x")),
     r": Found no valid file for the classes cat\. Supported extensions are: .*\.jpg"),
])
def test_an_image_folder_without_classes_or_images_names_its_root(tmp_path, make, match):
    root = tmp_path / "root"
    root.mkdir()
    make(root)
    with pytest.raises(ValueError, match=rf"image folder {root}.*{match}"):
        load_dataset("imagefolder", root=root)


# ---------------------------------------------------------------- Fashion-MNIST: damaged or stale files

def _fashion_fixture(folder, value):
    folder.mkdir()
    for prefix in ("train", "t10k"):
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.full((3, 28, 28), value, np.uint8))
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.full(3, value, np.uint8))


def test_fashion_mnist_cache_follows_the_source_files(tmp_path):
    """The unpacked cache must not serve another root's (or an older file's) images."""
    _fashion_fixture(tmp_path / "a", 1)
    _fashion_fixture(tmp_path / "b", 2)
    assert zdata.fashion_mnist("test", root=tmp_path / "a", cache=tmp_path / "cache")[0][1] == 1
    assert zdata.fashion_mnist("test", root=tmp_path / "b", cache=tmp_path / "cache")[0][1] == 2
    assert zdata.fashion_mnist("test", root=tmp_path / "a", cache=tmp_path / "cache")[0][1] == 1


@pytest.mark.parametrize("damage, match", [
    (lambda raw: raw[:len(raw) // 2], r"t10k-images-idx3-ubyte\.gz is damaged: EOFError"),
    (lambda raw: b"plain bytes", r"t10k-images-idx3-ubyte\.gz is damaged: BadGzipFile"),
    (lambda raw: gzip.compress(b"not an idx file"), r"Fashion-MNIST files in .* are not IDX files"),
])
def test_damaged_fashion_mnist_files_are_named(tmp_path, damage, match):
    _fashion_fixture(tmp_path / "src", 1)
    path = tmp_path / "src" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataIntegrityError, match=match):
        zdata.fashion_mnist("test", root=tmp_path / "src", cache=tmp_path / "cache")[0]
    assert not list((tmp_path / "cache").rglob("*.part"))


# ---------------------------------------------------------------- Preprocess, composite, ClipArt: bad input

PIXELS = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def pre16():
    return Preprocess.fit(PIXELS)


@pytest.mark.parametrize("x, error, match", [
    ((PIXELS * 255).to(torch.uint8), TypeError, r"images must be float pixels in \[0, 1\]; got dtype torch\.uint8\. "
                                                r"Convert with x\.float\(\) / 255"),
    (PIXELS * 255, ValueError, r"images must be float pixels in \[0, 1\]; got values in .*0-255 pixels\? divide"),
    ((PIXELS * 255).half(), ValueError, r"images must be float pixels in \[0, 1\]; got values in"),
    (PIXELS.masked_fill(PIXELS > 0.9, float("nan")), ValueError, "holds NaN or infinite values"),
    (PIXELS.masked_fill(PIXELS > 0.9, float("inf")), ValueError, "holds NaN or infinite values"),
    (PIXELS - 0.5, ValueError, r"got values in \[-0\.4.*already preprocessed\? pass the pixels"),
    (PIXELS.tolist(), TypeError, "images must be a torch.Tensor"),
    (PIXELS[:, :, :8], ValueError, r"images must be \(N, 3, 16, 16\) to match the mean image; got \(4, 3, 8, 16\)"),
])
def test_preprocess_refuses_what_is_not_pixels_in_0_1(pre16, x, error, match):
    with pytest.raises(error, match=match):
        pre16(x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_preprocess_takes_other_float_dtypes_with_the_same_result(pre16, dtype):
    x = PIXELS.to(dtype)
    expected = (x.float() - pre16.mean) / pre16.std                   # the same pixels, rounded to dtype
    assert torch.allclose(pre16(x).float(), expected, atol=1e-5)
    assert torch.allclose(Preprocess.fit(x).mean, PIXELS.to(dtype).float().mean(0), atol=1e-5)


@pytest.mark.parametrize("make, error, match", [
    (lambda: Preprocess(torch.rand(3, 8, 8), torch.tensor([0.2, float("nan"), 0.2])), ValueError,
     r"std must be finite and > 0 for each of the 3 channels; got \[0\.2.*, nan, 0\.2.*\]"),
    (lambda: Preprocess(torch.rand(3, 8, 8), torch.tensor([0.2, 0.0, 0.2])), ValueError, r"std must be finite and > 0"),
    (lambda: Preprocess(torch.rand(3, 8, 8), torch.tensor([0.2, -0.1, 0.2])), ValueError, r"std must be finite and > 0"),
    (lambda: Preprocess(torch.rand(3, 8, 8), torch.tensor([0.2, float("inf"), 0.2])), ValueError, "std must be finite"),
    (lambda: Preprocess(torch.rand(3, 8, 8) * 255, torch.ones(3)), ValueError,
     r"mean must be float pixels in \[0, 1\]; got values in .*0-255 pixels"),
    (lambda: Preprocess(torch.full((3, 8, 8), float("nan")), torch.ones(3)), ValueError, "mean .*NaN or infinite"),
    (lambda: Preprocess([0.5, 0.5, 0.5], torch.ones(3)), TypeError, "mean must be a torch.Tensor; got list"),
    (lambda: Preprocess(torch.rand(3, 8, 8), 0.2), TypeError, "std must be a torch.Tensor; got float"),
    (lambda: Preprocess(torch.rand(3, 8, 8), torch.ones(1)), ValueError, r"mean must be \(3, S, S\) and std \(3,\)"),
    (lambda: Preprocess.fit(PIXELS[:1]), ValueError, r"std must be finite and > 0 .*got \[0\.0, 0\.0, 0\.0\]"),
    (lambda: Preprocess.fit(torch.full((5, 3, 8, 8), 0.5)), ValueError, r"std must be finite and > 0"),
    (lambda: Preprocess.fit(PIXELS[:0]), ValueError, r"images must be a stack \(N, 3, S, S\) with N >= 1"),
    (lambda: Preprocess.fit(PIXELS[0]), ValueError, r"images must be a stack \(N, 3, S, S\)"),
    (lambda: Preprocess.fit((PIXELS * 255).byte()), TypeError, r"got dtype torch\.uint8\. Convert with x\.float\(\) / 255"),
    (lambda: Preprocess.fit(PIXELS * 255), ValueError, r"0-255 pixels\? divide by 255"),
    (lambda: Preprocess.fit(PIXELS).inverse(torch.zeros(1, 1, 16, 16)), ValueError, r"x must be a preprocessed batch"),
])
def test_preprocess_bad_statistics(make, error, match):
    with pytest.raises(error, match=match):
        make()


def _composite_args(**change):
    g = torch.Generator().manual_seed(1)
    args = {"sprites": torch.rand(2, 4, 8, 8, generator=g), "backgrounds": torch.rand(2, 3, 12, 12, generator=g),
            "scale": torch.tensor([0.7, 1.0]), "angle": torch.tensor([0.3, -0.2]),
            "center": torch.tensor([[0.1, -0.2], [0.0, 0.3]]), "flip": torch.tensor([True, False]), "size": 12}
    args.update(change)
    return args


@pytest.mark.parametrize("change, error, match", [
    ({"sprites": (torch.rand(2, 4, 8, 8) * 255).byte()}, TypeError, r"sprites must be float pixels .*torch\.uint8"),
    ({"sprites": torch.rand(2, 4, 8, 8) * 255}, ValueError, r"sprites must be float pixels in \[0, 1\]; got values"),
    ({"sprites": torch.full((2, 4, 8, 8), float("nan"))}, ValueError, "sprites .*NaN or infinite"),
    ({"sprites": torch.rand(2, 3, 8, 8)}, ValueError, r"sprites must be RGBA tiles \(N, 4, T, T\); got shape \(2, 3, 8, 8\)"),
    ({"sprites": "sprites"}, TypeError, r"sprites must be a torch\.Tensor"),
    ({"backgrounds": torch.rand(2, 3, 12, 12) * 255}, ValueError, r"backgrounds must be float pixels in \[0, 1\]"),
    ({"backgrounds": torch.rand(2, 3, 8, 8)}, ValueError, r"backgrounds must be \(N, 3, size, size\) = \(2, 3, 12, 12\)"),
    ({"backgrounds": torch.rand(3, 3, 12, 12)}, ValueError, r"backgrounds must be .*got \(3, 3, 12, 12\)"),
    ({"scale": torch.tensor([0.7, 0.0])}, ValueError, r"scale must be > 0 .*got min 0"),
    ({"scale": torch.tensor([0.7, -1.0])}, ValueError, r"scale must be > 0"),
    ({"scale": torch.tensor([0.7, float("nan")])}, ValueError, "scale must be finite"),
    ({"scale": 0.7}, TypeError, r"scale must be a torch\.Tensor \(2,\); got float"),
    ({"scale": torch.ones(3)}, ValueError, r"scale must have shape \(2,\) \(one per sprite\); got \(3,\)"),
    ({"angle": torch.tensor([0.0, float("inf")])}, ValueError, "angle must be finite"),
    ({"center": torch.zeros(2)}, ValueError, r"center must have shape \(2, 2\)"),
    ({"center": torch.zeros(2, 2, dtype=torch.bool)}, TypeError, r"center must be real numbers; got dtype torch\.bool"),
    ({"flip": torch.zeros(2)}, TypeError, r"flip must be a bool tensor \(N,\) .*got dtype torch\.float32"),
    ({"flip": torch.zeros(2, dtype=torch.long)}, TypeError, r"flip must be a bool tensor"),
    ({"size": 0}, ValueError, r"size must be an int >= 1 \(the side of the output images in pixels\); got 0"),
    ({"size": True}, TypeError, r"size must be an int >= 1 .*got True"),
    ({"size": 12.0}, TypeError, r"size must be an int >= 1 .*got 12\.0"),
])
def test_composite_bad_arguments(change, error, match):
    with pytest.raises(error, match=match):
        composite(**_composite_args(**change))


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-6), (torch.float16, 1e-3), (torch.bfloat16, 5e-3)])
def test_composite_of_other_float_dtypes_equals_float32(dtype, atol):
    args = _composite_args()
    ref, ref_mask = composite(**args)
    args["sprites"], args["backgrounds"] = args["sprites"].to(dtype), args["backgrounds"].to(dtype)
    args["scale"] = args["scale"].double()                            # mixed dtypes are fine too
    images, masks = composite(**args)
    assert images.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert torch.allclose(images.float(), ref, atol=atol)
    assert (masks != ref_mask).float().mean() < 0.02                  # only where rounding moves alpha across 0.5


@pytest.fixture(scope="module")
def small_val():
    return ClipArt("val", input_size=16, renders=1)


@pytest.mark.parametrize("call, error, match", [
    (lambda ds: ds[True], TypeError, r"index must be an int in -80\.\.79 \(one image\); got True"),
    (lambda ds: ds[1.0], TypeError, r"index must be an int in -80\.\.79"),
    (lambda ds: ds[torch.tensor(1.0)], TypeError, r"index must be an int"),
    (lambda ds: ds[80], IndexError, r"index 80 is out of range: the data set has 80 images"),
    (lambda ds: ds[-81], IndexError, r"index -81 is out of range"),
    (lambda ds: ds.set_epoch(-1), ValueError, r"epoch must be an int >= 0; got -1"),
    (lambda ds: ds.set_epoch(1.5), TypeError, r"epoch must be an int >= 0; got 1\.5"),
    (lambda ds: ds.locate(1.5, (0.5, 0.5)), TypeError, r"index must be an int or a \(K,\) tensor .*torch\.float64"),
    (lambda ds: ds.locate(True, (0.5, 0.5)), TypeError, r"index .*got dtype torch\.bool; for a boolean mask"),
    (lambda ds: ds.locate(1, (float("nan"), 0.5)), ValueError, r"uv must be finite"),
    (lambda ds: ds.locate(1, 0.5), ValueError, r"uv must be \(2,\) or \(K, 2\)"),
    (lambda ds: ds.subset([1.5]), TypeError, r"sprites must be a list of drawing indices \(ints\), got dtype"),
    (lambda ds: ds.subset(torch.ones(80, dtype=torch.bool)), TypeError, r"for a boolean mask pass mask\.nonzero"),
    (lambda ds: ds.subset([]), ValueError, r"sprites must be a non-empty list of indices in \[0, 79\]"),
    (lambda ds: ds.subset([-1]), ValueError, r"indices in \[0, 79\]"),
])
def test_clipart_methods_bad_arguments(small_val, call, error, match):
    with pytest.raises(error, match=match):
        call(small_val)


def test_clipart_indexes_like_a_sequence(small_val):
    for i in (np.int64(3), torch.tensor(3), -77):
        x, y = small_val[i]
        assert torch.equal(x, small_val.images[3].float() / 255) and y == int(small_val.labels[3])
    assert small_val.locate(torch.zeros(0, dtype=torch.long), torch.zeros(0, 2)).shape == (0, 2)
    assert len(list(iter(small_val))) == 80                      # IndexError still ends the old iteration protocol


def test_the_old_keyword_image_size_still_works_with_a_warning(tmp_path):
    """Issue 17: the input side is input_size everywhere; image_size=, the old keyword, is deprecated."""
    (tmp_path / "val" / "cat").mkdir(parents=True)
    Image.new("RGB", (80, 60), (255, 0, 0)).save(tmp_path / "val" / "cat" / "a.png")
    calls = {
        "ClipArt": lambda **k: ClipArt("val", renders=1, **k),
        "TuxPaint": lambda **k: TuxPaint(**k),
        "image_folder": lambda **k: zdata.image_folder(tmp_path / "val", **k),
        "load_dataset": lambda **k: load_dataset("imagefolder", "val", root=tmp_path, **k),
    }
    for name, call in calls.items():
        with pytest.warns(DeprecationWarning, match="image_size= is deprecated: pass input_size=") as caught:
            old = call(image_size=32)
        assert caught[0].filename == __file__, name                    # the warning points at the caller
        assert old[0][0].shape == call(input_size=32)[0][0].shape == (3, 32, 32), name
        with pytest.raises(TypeError, match="got both input_size= and its old name image_size="):
            call(input_size=32, image_size=32)
    ds = ClipArt("val", input_size=32, renders=1)
    assert ds.input_size == 32
    with pytest.warns(DeprecationWarning, match=r"\.image_size is deprecated: read \.input_size"):
        assert ds.image_size == 32
    with pytest.raises(AttributeError):
        ds.image_size = 64                                             # read-only: input_size is the one to set
    assert zdata.TEACHING_IMAGE_SIZE == zdata.TEACHING_INPUT_SIZE == ClipArt("val", renders=1).input_size
