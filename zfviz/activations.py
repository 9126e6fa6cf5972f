"""The feature vector of each of the paper's seven layers, read with one forward pass: what the other modules compare.

Explained in the chapter "Feature invariance" (book/invariance, Fig. 5), where ZF look at "the changes in the
feature vectors from the top and bottom layers of the model, relative to the untransformed feature"; reused by
"§4.3 Correspondence" (book/correspondence) and the linear probes of "§5 Experiments" (book/experiments).

**Layers.** The paper numbers seven layers with features: 1-5 are the conv layers, 6 and 7 the fully
connected ones. Layer k's feature vector is the output of its ReLU, flattened: for 1-5 the rectified
conv map before pooling (the same map as ``zfviz.deconv.feature_map``), for 6-7 relu6 / relu7, with
dropout off (the network is run in eval mode). :func:`layer_features` computes it with one forward
pass that stops at the highest layer asked for.

This module sits below ``zfviz.invariance``, ``zfviz.correspondence`` and ``zfviz.transfer`` in the import
graph: they read features through :func:`layer_features` and :func:`run_layers` (features and logits of one
batched pass) and check their layers with :func:`check_layers` (a fill image with
``zfviz._checks.check_fill_image``, among the package's shared checks); it imports none of them.
"""
from __future__ import annotations

import numbers
from contextlib import contextmanager
from typing import Sequence

import torch
from torch import nn

from .layers import convs, stack, to_model
from ._checks import check_batch_size, check_image_size, check_images, check_model

__all__ = ["layer_features"]


def _layer_ends(model: nn.Module) -> list[int]:
    """For the paper's layer k, ``ends[k - 1]``: how many children compute it (up to and with its ReLU)."""
    children = list(model.children())
    ends = [len(stack(model, k)) for k in range(1, len(convs(model)) + 1)]   # as zfviz.deconv defines 1-5
    # Fully connected layers with features: each Linear followed by a ReLU (fc6, fc7; fc8 gives the logits).
    ends += [i + 2 for i, m in enumerate(children[:-1])
             if isinstance(m, nn.Linear) and isinstance(children[i + 1], nn.ReLU)]
    return ends


def check_layers(model: nn.Module, layers) -> list[int]:
    """``layers`` (an int or a sequence of ints) as a list of distinct layer numbers in 1..L (L = 7 for ZFNet)."""
    n = len(_layer_ends(model))
    listed = [layers] if isinstance(layers, numbers.Integral) and not isinstance(layers, bool) else layers
    try:
        listed = list(listed)
    except TypeError:
        listed = None
    if not listed or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n
                         for k in listed):
        raise ValueError(f"layers must be a layer number or a non-empty list of them, ints in 1..{n} "
                         f"(1-5 the conv layers' rectified maps, 6-7 relu6/relu7); got {layers!r}")
    if len(set(listed)) != len(listed):
        raise ValueError(f"layers must not repeat a layer; got {layers!r}")
    return [int(k) for k in listed]


@contextmanager
def _eval_mode(model: nn.Module):
    """Dropout off while features are read; every module's own training flag is restored afterwards."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags.items():
            m.training = flag


def _walk(model: nn.Module, x: torch.Tensor, layers: list[int], logits: bool):
    """Run one batch through the children; return {layer: (n, D)} features and the logits (n, K) or None."""
    children, ends = list(model.children()), _layer_ends(model)
    want = {ends[k - 1]: k for k in layers}            # after this many children, layer k is done
    stop = len(children) if logits else max(want)      # stop early: nothing above is needed
    features = {}
    for i, m in enumerate(children[:stop], start=1):
        if isinstance(m, nn.Linear) and x[0].numel() != m.in_features:
            raise ValueError(f"the images give {x[0].numel()} features where the first fully connected "
                             f"layer expects {m.in_features}: use the input size the network was built for "
                             f"({getattr(model, 'config', {}).get('input_size', '?')} pixels)")
        x = m(x)
        if i in want:
            features[want[i]] = x.flatten(1)           # (n, D): maps flattened channel-major
    return features, (x if logits else None)


@torch.no_grad()
def run_layers(model: nn.Module, images: torch.Tensor, layers: list[int], logits: bool, batch_size: int):
    """Features ``{layer: (N, D)}`` of checked ``layers`` (:func:`check_layers`), and the logits (N, K) if
    ``logits`` (else None), from batches of ``batch_size`` on the model's device; results on the images' device.

    The one forward pass behind :func:`layer_features`, ``zfviz.invariance.invariance`` (which needs the
    logits too) and ``zfviz.correspondence.correspondence``. Checks the image size, not the model or images.
    """
    children, ends = list(model.named_children()), _layer_ends(model)
    check_image_size(model, images, children if logits else children[:max(ends[k - 1] for k in layers)],
                     what=f" for layer {max(layers)}" if not logits else "")
    feats, outs = {k: [] for k in layers}, []
    with _eval_mode(model):
        for batch in images.split(batch_size):
            f, out = _walk(model, to_model(model, batch), layers, logits)
            for k in layers:
                feats[k].append(f[k].to(images.device))
            if logits:
                outs.append(out.to(images.device))
    feats = {k: torch.cat(v) for k, v in feats.items()}
    return feats, (torch.cat(outs) if logits else None)


def layer_features(model: nn.Module, images: torch.Tensor, layers: int | Sequence[int],
                   batch_size: int = 64) -> torch.Tensor | dict[int, torch.Tensor]:
    """The flattened feature vector of the paper's layer(s): output of relu1..relu5, relu6, relu7.

    Explained in the chapter "Feature invariance" (book/invariance, Fig. 5); reused by
    "§4.3 Correspondence" and the linear probes of "§5 Experiments".

    Args:
        model: a flat network like ``zfviz.models.zfnet`` (conv part as ``zfviz.deconv`` walks it, then
            flatten, fc6, relu6, drop6, fc7, relu7, ...). It is run in eval mode, so dropout is off;
            its training flags are left as they were.
        images: (N, 3, H, W) float, preprocessed as the network expects (layers 6-7 need H = W = the
            input size it was built for).
        layers: one layer number in 1..7, or a list of them (all from one forward pass).
        batch_size: images per forward pass; the pass stops after the highest layer asked for.
    Returns:
        For an int, (N, D) with D = C*h*w of that layer (e.g. 96*110*110 for ZFNet's layer 1 at 224 px,
        ``feature_map(...).flatten(1)``), or 4096 for layers 6-7; for a list, ``{layer: (N, D_layer)}``.
        On the images' device, without gradient.
    """
    check_model(model)
    check_images(model, images)
    single = isinstance(layers, numbers.Integral) and not isinstance(layers, bool)
    listed = check_layers(model, layers)
    check_batch_size(batch_size, "images")
    feats, _ = run_layers(model, images, listed, logits=False, batch_size=batch_size)
    return feats[listed[0]] if single else feats
