"""Figures for the book: white backgrounds, colour-blind-safe maps, titled axes, modest sizes.

Explained in the chapter "The network" (first used there).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

__all__ = ["show_images", "show_feature_maps", "show_filters", "stretch", "show_top_projections"]

plt.rcParams.update({"figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
                     "figure.dpi": 80, "image.cmap": "viridis"})


def stretch(x: torch.Tensor) -> torch.Tensor:
    """Min-max stretch each image of a batch (N, C, H, W) or one image (C, H, W) to [0, 1] for display.

    Explained in the chapter "The network"; the paper stretches its projections the same way.
    """
    lead = x.shape[:-3] if x.dim() == 4 else ()
    flat = x.reshape(*lead, -1) if lead else x.reshape(-1)
    lo = flat.min(-1, keepdim=True).values
    hi = flat.max(-1, keepdim=True).values
    out = (flat - lo) / (hi - lo).clamp_min(1e-12)
    return out.reshape(x.shape)


def _grid(n: int, ncols: int, size: float):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def show_images(images: torch.Tensor, titles=None, ncols: int = 8, size: float = 1.4, suptitle: str | None = None):
    """Show RGB images (N, 3, H, W) in [0, 1] in a grid; returns the figure.

    Explained in the chapter "The network".
    """
    images = images.detach().cpu()
    fig, axes = _grid(len(images), ncols, size)
    for i, (ax, img) in enumerate(zip(axes.flat, images)):
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_feature_maps(maps: torch.Tensor, channels=None, ncols: int = 8, size: float = 1.2,
                      suptitle: str | None = None, cmap: str = "cividis"):
    """Show channels of one feature map (C, H, W), each with its own colour scale; returns the figure.

    Explained in the chapter "The network".
    """
    maps = maps.detach().cpu()
    channels = list(range(len(maps))) if channels is None else list(channels)
    fig, axes = _grid(len(channels), ncols, size)
    for ax, c in zip(axes.flat, channels):
        ax.imshow(maps[c].numpy(), cmap=cmap)
        ax.set_title(f"map {c}", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_filters(weight: torch.Tensor, ncols: int = 12, size: float = 0.8, suptitle: str | None = None):
    """Show first-layer filters (C_out, 3, k, k) as colour patches, each stretched to [0, 1].

    Explained in the chapter "The network" (and "Architecture selection", Fig. 6).
    """
    w = stretch(weight.detach().cpu())
    fig, axes = _grid(len(w), ncols, size)
    for i, (ax, f) in enumerate(zip(axes.flat, w)):
        ax.imshow(f.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(str(i), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_top_projections(rows, size: float = 0.62, suptitle: str | None = None):
    """Fig. 2 of the paper: per feature map, its top-k projections (left) beside the image patches (right).

    Explained in the chapter "What each layer sees" (book/visualisation).

    Args:
        rows: a list of ``(label, projections, patches)``; ``projections`` and ``patches`` are lists of k
            tensors (3, h, w) -- the receptive-field crops of each projection and of its image. Each
            projection is stretched to [0, 1] on its own, as the paper does; patches are shown as they are.
    """
    k = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), 2 * k + 1, figsize=(size * (2 * k + 1), size * len(rows) + 0.4),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * k + [0.3] + [1] * k})
    for r, (label, projections, patches) in enumerate(rows):
        for j in range(k):
            axes[r, j].imshow(stretch(projections[j].detach().cpu()).permute(1, 2, 0).numpy())
            axes[r, k + 1 + j].imshow(patches[j].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    axes[0, k // 2].set_title("projections", fontsize=8)
    axes[0, k + 1 + k // 2].set_title("image patches", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.08, left=0.08, right=0.99, top=0.85 if suptitle else 0.9, bottom=0.02)
    return fig
