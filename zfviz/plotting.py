"""Figures for the book: white backgrounds, colour-blind-safe maps, titled axes, modest sizes.

Explained in the chapter "The network" (first used there).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

__all__ = ["show_images", "show_feature_maps", "show_filters", "stretch",
           "stretch_symmetric", "show_fig2", "draw_deconvnet", "draw_box", "show_top_class", "TOP_CLASS_COLOURS"]

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


def stretch_symmetric(x: torch.Tensor, percentile: float = 99.5) -> torch.Tensor:
    """Show a projection (or a batch of them) with zero at the same grey (0.5) in every panel.

    Explained in the chapter "What each layer sees" (book/visualisation). Each image of ``x`` (C, H, W) or
    (N, C, H, W) is divided by the ``percentile`` of its |values| (so a few extreme pixels do not wash the
    rest out), mapped to 0.5 + 0.5 * value and clipped to [0, 1]: positive evidence is lighter than grey,
    negative darker, and an all-zero image is uniform grey. ``percentile`` in (0, 100].
    """
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or not x.is_floating_point():
        raise ValueError(f"x must be a float image (C, H, W) or batch (N, C, H, W); got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}")
    batch = x.detach().float().reshape(-1 if x.dim() == 4 else 1, *x.shape[-3:])
    scale = torch.quantile(batch.abs().flatten(1), percentile / 100, dim=1).clamp_min(1e-12)
    return (0.5 + 0.5 * batch / scale.view(-1, 1, 1, 1)).clamp(0, 1).reshape(x.shape)


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


def _hide_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)


def show_fig2(rows, size: float = 0.5, suptitle: str | None = None, percentile: float = 99.5, per_row: int = 1):
    """Fig. 2 of the paper: per feature map, a 3x3 grid of its top-9 projections beside a 3x3 grid of the
    image patches that caused them, each cropped to the unit's receptive field.

    Explained in the chapter "What each layer sees" (book/visualisation).

    Args:
        rows: a list of ``(label, projections, patches)``; ``projections`` (9, 3, F, F) float, zero meaning
            "no evidence" (shown grey, :func:`stretch_symmetric` per panel); ``patches`` (9, 3, F, F) pixels
            in [0, 1]. Crops from :func:`zfviz.deconv.field_crop`.
        size: inches per small panel; each map takes 3 rows and 7 columns of panels (3 + gap + 3).
        per_row: maps side by side (2 keeps a layer's 4 maps in a figure as wide as it is tall).
    """
    if isinstance(per_row, bool) or not isinstance(per_row, int) or per_row < 1:
        raise ValueError(f"per_row must be an int >= 1 (maps side by side), got {per_row!r}")
    if not rows:
        raise ValueError("rows must hold at least one (label, projections, patches)")
    for label, projections, patches in rows:
        if tuple(projections.shape[:2]) != (9, 3) or tuple(patches.shape[:2]) != (9, 3):
            raise ValueError(f"each row needs 9 projections and 9 patches (9, 3, F, F); got "
                             f"{tuple(projections.shape)} and {tuple(patches.shape)} for {label!r}")
    n_rows, n_cols = math.ceil(len(rows) / per_row), min(per_row, len(rows))
    fig = plt.figure(figsize=(size * 7.9 * n_cols, size * 3.4 * n_rows + (0.35 if suptitle else 0.1)))
    outer = fig.add_gridspec(n_rows, n_cols, hspace=0.3, wspace=0.12)
    for r, (label, projections, patches) in enumerate(rows):
        inner = outer[r // n_cols, r % n_cols].subgridspec(3, 7, wspace=0.04, hspace=0.04,
                                                           width_ratios=[1, 1, 1, 0.35, 1, 1, 1])
        shown = stretch_symmetric(projections.detach().cpu(), percentile)
        for i in range(9):
            a = fig.add_subplot(inner[i // 3, i % 3])
            a.imshow(shown[i].permute(1, 2, 0).numpy(), interpolation="lanczos")
            _hide_axes(a)
            b = fig.add_subplot(inner[i // 3, 4 + i % 3])
            b.imshow(patches[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="lanczos")
            _hide_axes(b)
            if i == 0:
                a.set_ylabel(label, fontsize=7)
            if r < n_cols and i == 1:
                a.set_title("projections", fontsize=8)
                b.set_title("image patches", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.02, top=0.9 if suptitle else 0.95)
    return fig


# Fig. 1's boxes: colour, left label (the convnet's layer) and right label (the deconvnet's step) of each kind.
_FIG1_KINDS = {"filter": ("#0072B2", "{} (filter)", "filter: {}ᵀ"), "rectify": ("#009E73", "{} (ReLU)", "rectify"),
               "unpool": ("#D55E00", "{} (max, switches)", "unpool: {} switches"),
               "skip": ("#999999", "{} (contrast norm)", "({} skipped)")}


def _fig1_box(ax, x: float, y: float, text: str, colour: str) -> None:
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(FancyBboxPatch((x - 1.9, y - 0.17), 3.8, 0.34, boxstyle="round,pad=0.03", fc="white",
                                ec=colour, lw=1.4))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5)


def _fig1_arrow(ax, x0: float, y0: float, x1: float, y1: float, colour: str = "#444444", style: str = "-|>",
                ls: str = "-") -> None:
    from matplotlib.patches import FancyArrowPatch
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle=style, mutation_scale=8, color=colour, lw=1,
                                 linestyle=ls))


def _fig1_columns(ax, up, down) -> None:
    """The convnet's column (x = 2.4, bottom to top) and the deconvnet's (x = 7.6, top to bottom), with the
    switches passed across at every unpooling step."""
    n = len(up)
    for i, (op, name) in enumerate(up):
        colour, left, _ = _FIG1_KINDS[op]
        _fig1_box(ax, 2.4, i, left.format(name), colour)
        if i:
            _fig1_arrow(ax, 2.4, i - 0.8 + 0.17 + 0.03, 2.4, i - 0.2)
    for i, (op, name) in enumerate(down):
        y = n - 1 - i
        colour, _, right = _FIG1_KINDS[op]
        _fig1_box(ax, 7.6, y, right.format(name), colour)
        if i:
            _fig1_arrow(ax, 7.6, y + 0.8, 7.6, y + 0.2)
        if op == "unpool":
            _fig1_arrow(ax, 4.3, y, 5.7, y, colour, style="-|>", ls="--")


def _fig1_ends(ax, n: int, layer: int) -> None:
    """The image below the convnet, the projection below the deconvnet, and the hand-over at the top."""
    ax.text(2.4, -0.8, "image (input)", ha="center", va="center", fontsize=8)
    ax.text(7.6, -0.8, "projection (pixels)", ha="center", va="center", fontsize=8)
    _fig1_arrow(ax, 2.4, -0.65, 2.4, -0.2)
    _fig1_arrow(ax, 7.6, -0.2, 7.6, -0.65)
    ax.text(5.0, n - 0.35, f"layer {layer}: zero all other activations", ha="center", fontsize=7.5)
    _fig1_arrow(ax, 4.3, n - 1, 5.7, n - 1, "#444444")


def draw_deconvnet(model: torch.nn.Module, layer: int, size: float = 1.0):
    """Fig. 1 of the paper, drawn from the network's own module list: the convnet's way up to layer
    ``layer`` (left, bottom to top) and the deconvnet's way down (right, top to bottom), with the pooling
    switches passed across.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). The right column is
    :func:`zfviz.deconv.deconv_steps`, so it shows exactly the steps :func:`zfviz.deconv.project` takes
    (layers 3 and 4 have no pooling, hence no unpooling).
    """
    from .deconv import deconv_steps
    down = deconv_steps(model, layer)                       # top first
    up = list(reversed(down))                               # bottom first
    n = len(up)
    fig, ax = plt.subplots(figsize=(6.2 * size, (0.42 * n + 1.1) * size))
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.1, n + 0.2)
    ax.axis("off")
    _fig1_columns(ax, up, down)
    _fig1_ends(ax, n, layer)
    ax.set_title(f"Convnet (left, up) and deconvnet (right, down) for layer {layer}", fontsize=9)
    return fig


def draw_box(ax, box, color: str = "#FFB000", lw: float = 1.5) -> None:
    """Outline an end-exclusive pixel box ``(x0, y0, x1, y1)`` (:class:`zfviz.layers.Box`, as
    ``receptive_field_box`` gives) on an image axis.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    """
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be 4 numbers (x0, y0, x1, y1); got {box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or y1 < y0 or x1 < x0:
        raise ValueError(f"box must be (x0, y0, x1, y1), finite, with x0 <= x1 and y0 <= y1; got {box!r}")
    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=color, lw=lw))


# Paul Tol's colour-blind-safe "muted" qualitative scheme (eight colours); grey for everything else.
TOP_CLASS_COLOURS = ("#332288", "#DDCC77", "#CC6677", "#117733", "#88CCEE", "#AA4499", "#44AA99", "#999933")
OTHER_CLASSES = "#DDDDDD"


def show_top_class(ax, top_class: torch.Tensor, class_names, extent=None, fontsize: float = 7) -> list[int]:
    """ZF Fig. 7 (e): the most probable class at each occluder position, one colour per class, with a legend.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion). ``top_class`` (ny, nx) ints (e.g.
    ``occlusion_probabilities(...).argmax(-1)``); ``class_names[c]`` names class c. The classes that win
    somewhere get the colours of :data:`TOP_CLASS_COLOURS`, most frequent first; any beyond eight share grey.
    ``extent`` places the map over its image (``zfviz.occlusion.map_extent``). Returns the coloured classes.
    """
    from matplotlib.colors import ListedColormap
    if not isinstance(top_class, torch.Tensor) or top_class.dim() != 2 or top_class.is_floating_point():
        raise ValueError(f"top_class must be an integer tensor (ny, nx); got "
                         f"{tuple(top_class.shape) if isinstance(top_class, torch.Tensor) else type(top_class).__name__}")
    wins = top_class.flatten().long().bincount()
    named = [int(c) for c in wins.argsort(descending=True) if wins[c] > 0][:len(TOP_CLASS_COLOURS)]
    codes = torch.full_like(top_class, len(named))
    for k, c in enumerate(named):
        codes[top_class == c] = k
    colours = list(TOP_CLASS_COLOURS[:len(named)])
    ax.imshow(codes.numpy(), cmap=ListedColormap(colours + [OTHER_CLASSES]), vmin=-0.5, vmax=len(named) + 0.5,
              interpolation="nearest", extent=extent)
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in colours],
              labels=[class_names[c] for c in named], fontsize=fontsize, loc="upper left",
              bbox_to_anchor=(1.02, 1), frameon=False)
    return named
