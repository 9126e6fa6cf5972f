"""Feature generalisation (§5.2, Fig. 9) and per-layer features (§5.3): new classifiers on a trained net's features.

Explained in the chapter "§5 Experiments" (book/experiments).

**Protocol.** ZF freeze layers 1-7 of the ImageNet-trained model and train only a new softmax on a few
images per class of another data set (Caltech-101/256), over several random splits, and report the mean
per-class accuracy; §5.3 does the same with a linear SVM or softmax on the features of one layer at a
time. Our transfer set is the Tux Paint photo stamps (``zfviz.data.TuxPaint``, 8 classes x 18 stamps).
A *stamp* is one cut-out photo; every stamp is rendered several times onto backgrounds, and a split
never puts renders of one stamp on both sides (:func:`few_shot_split`), so a classifier cannot score by
recognising a stamp it was trained on.

**Features.** :func:`probe_features` returns a layer's feature vector as ``zfviz.activations.layer_features``
computes it (the rectified map, flattened), optionally max-pooled over a coarse ``grid x grid`` of
cells first, which keeps the conv layers' vectors short enough for a linear classifier fitted to tens
of images (layer 1 of the teaching net has 72,600 dimensions at 112 px, 1,000 times the training set).

**Classifiers.** :func:`fit_linear` standardises the features and fits scikit-learn's ``LinearSVC``
("svm") or multinomial ``LogisticRegression`` ("softmax"), both L2-regularised; :func:`per_class_accuracy`
is the paper's measure. :func:`train_from_scratch` trains the whole network on the same few images, the
paper's "from scratch" baseline.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .activations import layer_features
from .layers import to_model
from ._checks import check_finite, check_int

__all__ = ["few_shot_split", "probe_features", "fit_linear", "per_class_accuracy", "linear_probe",
           "train_from_scratch", "efficientnet_features", "CLASSIFIERS"]

CLASSIFIERS = ("svm", "softmax")


def few_shot_split(stamp_labels, per_class: int, test_per_class: int, seed: int = 0):
    """Pick, in every class, ``test_per_class`` test stamps and ``per_class`` training stamps among the rest.

    Explained in the chapter "§5 Experiments" (feature generalisation).

    Args:
        stamp_labels: (M,) int class of each stamp (``TuxPaint.sprite_labels``).
        per_class: training stamps per class (the paper's 15, 30, ... images per class).
        test_per_class: test stamps per class, the same for every ``per_class`` of one seed.
        seed: the split. For one seed the test stamps are fixed and the training stamps are nested
            (the 2 of ``per_class=2`` are the first 2 of ``per_class=5``), so a learning curve over
            ``per_class`` compares like with like.
    Returns:
        ``(train, test)``: two sorted (K,) long tensors of stamp indices, disjoint.
    Raises ValueError when a class has fewer than ``per_class + test_per_class`` stamps.
    """
    labels = torch.as_tensor(stamp_labels)
    if labels.dim() != 1 or labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"stamp_labels must be a 1-D int tensor, got {labels.dtype} {tuple(labels.shape)}")
    per_class = check_int("per_class", per_class, 1)
    test_per_class = check_int("test_per_class", test_per_class, 1)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0))
    train, test = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) < per_class + test_per_class:
            raise ValueError(f"class {c} has {len(members)} stamps, fewer than per_class + test_per_class = "
                             f"{per_class} + {test_per_class}")
        order = members[torch.randperm(len(members), generator=g)]
        test.append(order[:test_per_class])
        train.append(order[test_per_class:test_per_class + per_class])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


@torch.no_grad()
def probe_features(model: nn.Module, images: torch.Tensor, layers: int | Sequence[int], grid: int | None = None,
                   batch_size: int = 64):
    """Features of layer(s) 1-7 for a linear classifier; conv maps optionally max-pooled to ``grid x grid``.

    Explained in the chapter "§5 Experiments" (per-layer features, §5.3).

    Args:
        model: a flat network like ``zfviz.models.zfnet`` (see ``zfviz.activations.layer_features``).
        images: (N, 3, S, S) preprocessed as the network expects.
        layers: one layer number 1-7 or a list of them (one forward pass).
        grid: ``None`` keeps the whole rectified map (C*h*w values); an int g max-pools each map into g x g
            cells first (C*g*g values; adaptive max pooling), for layers 1-5. Layers 6-7 are vectors and
            are returned as they are.
    Returns:
        (N, D) float tensor for an int ``layers``, else ``{layer: (N, D_layer)}``.
    """
    if grid is not None:
        check_int("grid", grid, 1)
    single = isinstance(layers, numbers.Integral) and not isinstance(layers, bool)
    feats = layer_features(model, images, layers, batch_size=batch_size)   # checks model, images and layers
    feats = {layers: feats} if single else feats
    listed = list(feats)
    out = {}
    for layer in listed:
        f = feats[layer]
        if grid is not None and layer <= 5:
            maps = _layer_maps(model, layer, f)
            if grid > min(maps.shape[-2:]):
                raise ValueError(f"grid must be an int in 1..{min(maps.shape[-2:])} for layer {layer} (its map is "
                                 f"{maps.shape[-2]}x{maps.shape[-1]}; more cells would repeat values); got {grid!r}")
            f = F.adaptive_max_pool2d(maps, grid).flatten(1)
        out[layer] = f
    return out[listed[0]] if single else out


def _layer_maps(model: nn.Module, layer: int, flat: torch.Tensor) -> torch.Tensor:
    """Reshape layer ``layer``'s flattened features back to (N, C, h, w) (square maps)."""
    conv = getattr(model, f"conv{layer}")
    c = conv.out_channels
    side = math.isqrt(flat.shape[1] // c)
    if c * side * side != flat.shape[1]:
        raise ValueError(f"layer {layer} features of size {flat.shape[1]} are not {c} square maps")
    return flat.view(len(flat), c, side, side)


def _check_xy(features, labels, name: str):
    x = np.asarray(features.cpu() if torch.is_tensor(features) else features, dtype=np.float64)
    y = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{name}: features must be (N, D) and labels (N,) with the same N; got "
                         f"{x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got {y.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: features must be finite (no NaN or inf); got {int((~np.isfinite(x)).sum())} "
                         f"non-finite value(s) of {x.size}")
    return x, y


def fit_linear(features, labels, kind: str = "softmax", C: float = 1.0):
    """Fit a linear classifier on frozen features: standardise, then an L2-regularised SVM or softmax.

    Explained in the chapter "§5 Experiments".

    Args:
        features: (N, D) float (tensor or array); labels: (N,) int.
        kind: "svm" (scikit-learn ``LinearSVC``, one-vs-rest squared hinge) or "softmax" (multinomial
            ``LogisticRegression``, lbfgs).
        C: inverse regularisation strength (smaller = stronger), > 0.
    Returns:
        a fitted scikit-learn ``Pipeline`` (``predict(features) -> labels``).
    """
    if kind not in CLASSIFIERS:
        raise ValueError(f"kind must be one of {CLASSIFIERS}, got {kind!r}")
    if isinstance(C, bool) or not isinstance(C, numbers.Real) or not 0 < C < math.inf:
        raise ValueError(f"C must be a number > 0 (finite), got {C!r}")
    x, y = _check_xy(features, labels, "fit_linear")
    if len(np.unique(y)) < 2 or x.shape[1] < 1:
        raise ValueError(f"fit_linear: labels must hold at least 2 classes and features at least 1 dimension; got "
                         f"classes {np.unique(y).tolist()} and features {x.shape}")
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("fit_linear needs scikit-learn: pip install 'zfviz[colab]'") from e
    # random_state: liblinear's dual solver visits the samples in a random order; fixed, the result is too.
    clf = (LinearSVC(C=C, max_iter=20_000, random_state=0) if kind == "svm"
           else LogisticRegression(C=C, max_iter=5_000))
    pipe = make_pipeline(StandardScaler(), clf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # a ConvergenceWarning at max_iter changes no reported digit
        pipe.fit(x, y)
    return pipe


def per_class_accuracy(predicted, labels, num_classes: int | None = None) -> float:
    """The paper's measure: the accuracy within each class, averaged over the classes present in ``labels``.

    Explained in the chapter "§5 Experiments". ``predicted`` and ``labels``: (N,) ints. scikit-learn's
    ``balanced_accuracy_score`` (the mean recall per class); equal to the plain accuracy when every class has
    as many test images (as in our splits). ``num_classes`` is deprecated and changes nothing (classes absent
    from ``labels`` never counted): given, it still checks that the labels are in ``0..num_classes - 1`` and
    warns (``DeprecationWarning``).
    """
    p = np.asarray(predicted.cpu() if torch.is_tensor(predicted) else predicted)
    y = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)
    if p.shape != y.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(f"predicted and labels must be (N,) of the same N >= 1, got {p.shape} and {y.shape}")
    for name, v in (("predicted", p), ("labels", y)):
        if not np.issubdtype(v.dtype, np.integer):
            raise ValueError(f"{name} must be integer class numbers, got {v.dtype}")
    if num_classes is not None:
        _check_label_range(y, num_classes)
        warnings.warn("per_class_accuracy's num_classes is deprecated and changes nothing (the mean is over the "
                      "classes present in labels); leave it out", DeprecationWarning, stacklevel=2)
    try:
        from sklearn.metrics import balanced_accuracy_score
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("per_class_accuracy needs scikit-learn: pip install 'zfviz[colab]'") from e
    with warnings.catch_warnings():
        # A predicted class that no label has is simply a wrong answer, as in the paper's measure.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y, p))


def _check_label_range(y: np.ndarray, num_classes) -> None:
    num_classes = check_int("num_classes", num_classes, 1)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must be in 0..{num_classes - 1} (num_classes={num_classes}); got "
                         f"{int(y.min())}..{int(y.max())}")


def linear_probe(features, labels, stamps, stamp_labels, per_class: int, test_per_class: int,
                 seeds: Sequence[int] = (0, 1, 2, 3, 4), kind: str = "softmax", C: float = 1.0) -> np.ndarray:
    """Per-class test accuracy of a new linear classifier over several random few-shot splits.

    Explained in the chapter "§5 Experiments" (Fig. 9 and the per-layer table).

    Args:
        features: (N, D) features of N images (every render of every stamp); labels: (N,) their classes.
        stamps: (N,) which stamp each image is a render of; stamp_labels: (M,) each stamp's class.
        per_class, test_per_class, seeds: the splits, as :func:`few_shot_split`.
        kind, C: the classifier, as :func:`fit_linear`.
    Returns:
        (len(seeds),) float array: per-class accuracy on the test renders of each split.
    """
    x = torch.as_tensor(features)
    y, stamps = torch.as_tensor(labels), torch.as_tensor(stamps)
    stamp_labels = torch.as_tensor(stamp_labels)
    if x.dim() != 2 or y.dim() != 1 or stamps.dim() != 1 or not (len(x) == len(y) == len(stamps)):
        raise ValueError(f"features (N, D), labels (N,) and stamps (N,) must have the same length N, got shapes "
                         f"{tuple(x.shape)}, {tuple(y.shape)}, {tuple(stamps.shape)}")
    if not x.is_floating_point() and x.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"features must be numbers (N, D), got {x.dtype}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"features must be finite (no NaN or inf); got {int((~torch.isfinite(x)).sum())} "
                         f"non-finite value(s) of {x.numel()}")
    if stamps.is_floating_point() or stamps.dtype == torch.bool or stamps.is_complex() or (
            len(stamps) and not 0 <= int(stamps.min()) <= int(stamps.max()) < len(stamp_labels)):
        span = f" {stamps.min().item()}..{stamps.max().item()}" if len(stamps) else ""
        raise ValueError(f"stamps must be ints in 0..{len(stamp_labels) - 1}, indices into stamp_labels; got "
                         f"{stamps.dtype}{span}")
    if stamp_labels.dim() == 1 and not torch.equal(y.long(), stamp_labels[stamps].long()):
        raise ValueError("labels must be each image's stamp's class, labels == stamp_labels[stamps]; they differ for "
                         f"{int((y.long() != stamp_labels[stamps].long()).sum())} image(s)")
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0 (one split each), got {seeds!r}")
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0 (one split each), got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat a seed (a repeated split would count twice in the mean), "
                         f"got {seeds!r}")
    scores = []
    for seed in seeds:
        train, test = few_shot_split(stamp_labels, per_class, test_per_class, seed)
        tr, te = torch.isin(stamps, train), torch.isin(stamps, test)
        clf = fit_linear(x[tr], y[tr], kind, C)
        scores.append(per_class_accuracy(clf.predict(np.asarray(x[te], dtype=np.float64)), y[te]))
    return np.array(scores)


def train_from_scratch(dataset, train_stamps, steps: int = 200, batch_size: int = 32, seed: int = 0,
                       lr: float = 0.01, width: float = 0.25):
    """The paper's baseline: the same network, randomly initialised, trained only on the few-shot images.

    Explained in the chapter "§5 Experiments" (feature generalisation).

    Args:
        dataset: a ``zfviz.data.TuxPaint`` (or ``ClipArt``); its ``input_size`` sets the network's input
            and its ``renders`` how many renders of each stamp one pass holds.
        train_stamps: (K,) stamp indices to train on (from :func:`few_shot_split`).
        steps: SGD steps of ``batch_size`` images; every pass over the training stamps draws fresh
            renders (``dataset.set_epoch``), the same augmentation as the main training run.
        seed, lr, width: the teaching recipe (momentum 0.9, dropout 0.5, filter renormalisation 0.1,
            Kaiming initialisation), at ``lr`` and ``width``.
    Returns:
        ``(model, preprocess)``, the model in eval mode.
    """
    from .data import Preprocess
    from .models import init_kaiming_, zfnet
    from .train import train_step
    steps, batch_size = check_int("steps", steps, 1), check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a finite number > 0 (the SGD learning rate, 0.01 in the recipe), got {lr!r}")
    subset = dataset.subset(train_stamps)       # renders only the training stamps: cheap fresh epochs
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    preprocess = Preprocess.fit(subset.tensors()[0])
    net = init_kaiming_(zfnet(len(dataset.classes), width, dataset.input_size))
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    epoch, batches = 0, []
    for _ in range(steps):
        if not batches:                          # a new pass over the stamps, in fresh renders
            subset.set_epoch(epoch)
            epoch += 1
            x, y = subset.tensors()
            order = torch.randperm(len(y), generator=g)
            batches = list(order.split(batch_size))
        b = batches.pop(0)
        train_step(net, opt, preprocess(x[b]), y[b], 0.1)
    return net.eval(), preprocess


# Where EfficientNet-Lite0's seven stages end (block indices; the stage's output channels in the comment).
_LITE0_STAGE_ENDS = (0, 2, 4, 7, 10, 14, 15)   # 16, 24, 40, 80, 112, 192, 320 channels


def _lite0_blocks(model) -> Sequence[nn.Module]:
    """EfficientNet-Lite0's 16 blocks in order; TypeError for a model that is not one.

    The one place that reaches into the model's private attributes: efficientnet_lite_pytorch has no public
    way to the stages' outputs (no ``extract_endpoints``; its public ``extract_features`` gives only the head's
    output), so the blocks are taken from its ``_blocks`` list and observed with forward hooks.
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "_blocks"):
        raise TypeError(f"model must be EfficientNet-Lite0 from zfviz.pretrained.efficientnet_lite0(), "
                        f"got {type(model).__name__}")
    return model._blocks


def _check_lite0_images(images, grid: int) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, 3, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"images must be (N, 3, H, W) with N >= 1, got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (preprocessed with the model's preprocess), got {images.dtype}")
    check_finite("images", images)
    side = min(-(-images.shape[-2] // 32), -(-images.shape[-1] // 32))     # stage 7's map: the input / 32
    if grid > side:
        raise ValueError(f"grid must be an int in 1..{side} for {images.shape[-2]}x{images.shape[-1]} images (the "
                         f"last stage's map is about 1/32 of the input; more cells would repeat values); got {grid!r}")


@torch.no_grad()
def efficientnet_features(model: nn.Module, images: torch.Tensor, grid: int = 2, batch_size: int = 64) -> dict:
    """Features of EfficientNet-Lite0 (``zfviz.pretrained.efficientnet_lite0``) after each of its stages, for probes.

    Explained in the chapter "§5 Experiments": the same per-layer probe as ZF's §5.3 on a network trained on
    ImageNet. ``images``: (N, 3, 224, 224) preprocessed with the model's ``preprocess``. Returns
    ``{1..7: stage output max-pooled to grid x grid cells, flattened; 8: the 1,280 globally averaged
    head features that feed the classifier (the model's own ``extract_features``)}``, each (N, D) in the
    model's dtype (float32). Computed on the model's device, batch by batch; returned on the images' device.
    """
    grid = check_int("grid", grid, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    blocks = _lite0_blocks(model)
    _check_lite0_images(images, grid)
    device = images.device
    x_all = to_model(model, images)
    model.eval()
    out: dict[int, list] = {k: [] for k in range(1, 9)}
    seen: list[torch.Tensor] = []
    hooks = [blocks[i].register_forward_hook(lambda _m, _inp, output: seen.append(output))
             for i in _LITE0_STAGE_ENDS]
    try:
        for s in range(0, len(x_all), batch_size):
            seen.clear()
            head = model.extract_features(x_all[s:s + batch_size])
            for stage, x in enumerate(seen, start=1):
                out[stage].append(F.adaptive_max_pool2d(x, grid).flatten(1).to(device))
            out[8].append(head.mean(dim=(2, 3)).to(device))
    finally:
        for h in hooks:
            h.remove()
    return {k: torch.cat(v) for k, v in out.items()}
