"""The teaching ZFNet as one ONNX model, for the published book to run it in the reader's browser (issue 18).

Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
(book/occlusion): the graph computes what those chapters compute with ``zfviz.deconv`` and ``zfviz.occlusion``,
so that a page can run it with onnxruntime-web (WebAssembly) instead of showing precomputed pictures.

One model file holds everything, so the weights (2.9 M parameters, 11.7 MB in float32) are downloaded and held
once. Inputs and outputs (S the network's input size, 192 for the teaching ZFNet; C_L, h_L, w_L layer L's maps
and their size; K the classes):

- ``image`` (N, 3, S, S): preprocessed images (``zfviz.data.Preprocess``'s output), any N >= 1;
- ``top1``..``top5`` (T, C_L, h_L, w_L): the deconvnet's input per layer, for the first T images, 1 <= T <= N;
- ``logits`` and ``probabilities`` (N, K): the network's output (dropout off) and its softmax;
- ``relu1``..``relu5`` (N, C_L, h_L, w_L): each conv layer's rectified map (``zfviz.deconv.feature_map``);
- ``relu5_totals`` (N, C_5): each layer-5 map summed over (h, w), Fig. 7 (b);
- ``relu5_peaks`` (N, C_5): each layer-5 map's largest activation, which picks Fig. 7's map;
- ``projection`` (T, 3, S, S): the deconvnet projection of ``top1``..``top5`` (``zfviz.deconv.project``).

Why one graph with all five ``top`` inputs. onnxruntime runs every node of a graph whatever outputs are asked
for, and wants every input fed (measured with onnxruntime 1.32: asking for a cheap output costs as much as the
whole graph), and onnxruntime-web cannot share weights between two sessions. So the deconvnet is one way down,
from layer 5 to pixels, with layer L's ``top`` added to the signal where it reaches relu L. The page feeds the
map of the chosen layer with all but the chosen unit(s) zeroed, and zeros for the other four: the layers above
then send exactly zero down (unpooled, rectified and filtered without bias, zero stays zero), so the result is
``zfviz.deconv.project`` of that layer's unit. Feeding two layers at once is not one projection (the ReLUs on
the way down do not add); the tests feed one. ``T`` is at least 1: onnxruntime cannot reshape an empty batch
(``flatten`` becomes ``Reshape(0, C, -1)``, which it refuses), so where no projection is wanted (classification,
the occlusion batches) the page feeds tops of zeros with T = 1: one image's way down, about the cost of
one more image's forward pass.

Occlusion. The page builds the occluded copies itself (a square of value ``fill``, 0 for the grey square of
mean-subtracted input, as ``zfviz.occlusion.occlude``) and runs them as one batch: ``probabilities[:, target]``
is Fig. 7 (d) (``occlusion_map``), the row's argmax (e), and ``relu5_totals[:, c]`` is (b) for the map ``c`` whose
``relu5_peaks`` is largest in the unoccluded image (first on ties, as ``occlusion_panels``); (c) is the projection
of that map's strongest unit (its position: the argmax of ``relu5[0, c]``).
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoints, deconv, layers
from ._checks import check_model

__all__ = ["BrowserZFNet", "onnx_model", "to_float16", "export_teaching_onnx", "ExportedFile", "OPSET",
           "MODEL_FILE", "input_names", "output_names"]

OPSET = 17          # ScatterElements with reduction="add" needs 16; onnxruntime-web runs 17 on every backend
MODEL_FILE = "zfnet_teaching.onnx"
WEIGHTS = ("float32", "float16")


def _layer_count(model: nn.Module) -> int:
    return len(layers.convs(model))


def input_names(model: nn.Module) -> list[str]:
    """The model file's inputs: ``["image", "top1", ..., "top5"]`` (one ``top`` per conv layer).

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet); shapes in this module's docstring."""
    return ["image"] + [f"top{k}" for k in range(1, _layer_count(model) + 1)]


def output_names(model: nn.Module) -> list[str]:
    """The model file's outputs, in order: logits, probabilities, relu1..relu5, relu5_totals/peaks, projection.

    Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
    (book/occlusion); shapes in this module's docstring."""
    n = _layer_count(model)
    return (["logits", "probabilities"] + [f"relu{k}" for k in range(1, n + 1)]
            + [f"relu{n}_totals", f"relu{n}_peaks", "projection"])


class BrowserZFNet(nn.Module):
    """What the browser runs: one forward pass with switches, and one deconvnet way down.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Wraps a flat conv network
    (``zfviz.models.zfnet``, the teaching ZFNet) in eval mode; the wrapped model is a copy, float32, on the CPU.
    ``forward(image (N, 3, S, S), top1 (T, C_1, h_1, w_1), ..., top5)`` returns the tuple of
    :func:`output_names`: ``logits`` (N, K), ``probabilities`` (N, K), ``relu1``..``relu5`` (N, C_L, h_L, w_L),
    ``relu5_totals`` and ``relu5_peaks`` (N, C_5), ``projection`` (T, 3, S, S) for the first T images.

    The way down is ``zfviz.deconv``'s own steps: :func:`zfviz.deconv.unpool` (switches from max-pooling with
    indices, colliding values added), :func:`zfviz.deconv.rectify`, :func:`zfviz.deconv.filter_down`
    (transposed filters, no bias); contrast normalisation skipped.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a flat conv network (torch.nn.Module), e.g. from "
                            f"zfviz.checkpoints.load_teaching_zfnet(); got {type(model).__name__}")
        check_model(model)
        if not any(isinstance(m, nn.Linear) for m in model.children()):
            raise ValueError("model must end in its classifier (Flatten, Linear ...): the graph outputs logits")
        self.net = copy.deepcopy(model).float().cpu().eval()
        self.layers = _layer_count(self.net)
        self.below = list(layers.stack(self.net, self.layers))    # conv1 .. relu5: walked with switches
        self.above = list(self.net.children())[len(self.below):]  # pool5 .. fc8: the classifier
        # index in `below` of relu L (the end of layer L's stack) -> L: where top L joins the way down
        self.joins = {len(layers.stack(self.net, k)) - 1: k for k in range(1, self.layers + 1)}
        for i, k in self.joins.items():
            if not isinstance(self.below[i], nn.ReLU):
                raise ValueError(f"conv layer {k} is not followed by a ReLU: its feature map is not rectified")
        config = getattr(self.net, "config", None)
        if not isinstance(config, dict) or not isinstance(config.get("input_size"), int):
            raise ValueError("model must carry .config['input_size'] (built by zfviz.models): the graph's input size")
        self.input_size = config["input_size"]
        # The sizes are fixed by the input size, so the graph's are constants: each step's input (H, W), each
        # layer's map (C_L, h_L, w_L). (While tracing, x.shape would give tensors, which the steps refuse.)
        x = torch.zeros(1, layers.convs(self.net)[0].in_channels, self.input_size, self.input_size)
        self.sizes, self.map_shapes = [], []
        with torch.no_grad():
            for i, m in enumerate(self.below):
                self.sizes.append(tuple(x.shape[-2:]))
                x = m(x)
                if i in self.joins:
                    self.map_shapes.append(tuple(x.shape[1:]))

    def forward(self, image: torch.Tensor, *tops: torch.Tensor):
        x, steps, maps = image, [], []                    # steps: (module, switches or None)
        for i, m in enumerate(self.below):
            if isinstance(m, nn.MaxPool2d):               # as zfviz.deconv: the module's geometry, switches kept
                y, switches = F.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation,
                                           ceil_mode=m.ceil_mode, return_indices=True)
                steps.append((m, switches))
            else:
                y = m(x)
                steps.append((m, None))
            if i in self.joins:
                maps.append(y)                            # relu L: (N, C_L, h_L, w_L)
            x = y
        logits = x
        for m in self.above:
            logits = m(logits)                            # (N, K)
        top_map = maps[-1]                                # (N, C_5, h_5, w_5)
        count = tops[-1].shape[0]                         # T: project the first T images
        signal = None
        for i in reversed(range(len(steps))):
            m, switches = steps[i]
            if i in self.joins:                           # relu L's output: top L joins the signal
                top = tops[self.joins[i] - 1]
                signal = top if signal is None else signal + top
            size = self.sizes[i]
            if isinstance(m, nn.MaxPool2d):
                signal = deconv.unpool(signal, switches[:count], size)
            elif isinstance(m, nn.ReLU):
                signal = deconv.rectify(signal)
            elif isinstance(m, nn.Conv2d):
                signal = deconv.filter_down(signal, m, size)
            # LocalResponseNorm: skipped on the way down, as in the paper
        return (logits, logits.softmax(dim=1), *maps, top_map.sum(dim=(2, 3)), top_map.amax(dim=(2, 3)), signal)

    def example_inputs(self, n: int = 1, count: int = 1) -> tuple[torch.Tensor, ...]:
        """Zeros of the input shapes: image (n, 3, S, S) and top L (count, C_L, h_L, w_L), L = 1..5."""
        image = torch.zeros(n, layers.convs(self.net)[0].in_channels, self.input_size, self.input_size)
        return (image, *[torch.zeros(count, *shape) for shape in self.map_shapes])


def onnx_model(model: nn.Module, weights: str = "float32"):
    """The :class:`BrowserZFNet` of ``model`` as an ``onnx.ModelProto``, checked by ``onnx.checker``.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Opset :data:`OPSET`; batch sizes N
    and T are dynamic, the input size S is the model's (its classifier fixes it). ``weights="float16"`` stores
    the weights in half precision and casts them back to float32 when the session starts (:func:`to_float16`):
    half the download, the arithmetic still float32.

    Exporter: torch.onnx's TorchScript exporter (``dynamo=False``). It needs no onnxscript, names the weights
    after the model's parameters (``net.conv1.weight``), writes the same bytes for the same weights, and turns
    ``max_pool2d(return_indices=True)`` into ``MaxPool`` with its ``Indices`` output (made per-map, as PyTorch's,
    by subtracting each map's offset) and ``scatter_add`` into ``ScatterElements(reduction="add")``.
    """
    import onnx
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS} (how the file stores them), got {weights!r}")
    wrapper = BrowserZFNet(model)
    inputs = wrapper.example_inputs()
    names_in, names_out = input_names(wrapper.net), output_names(wrapper.net)
    dynamic = {name: {0: "N"} for name in names_in[:1] + names_out[:-1]}
    dynamic.update({name: {0: "T"} for name in names_in[1:] + names_out[-1:]})
    buffer = io.BytesIO()
    with warnings.catch_warnings():   # the deconv steps' argument checks run once, on the example: no graph nodes
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, inputs, buffer, input_names=names_in, output_names=names_out,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    if weights == "float16":
        proto = to_float16(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_float16(proto):
    """A copy of an ONNX model whose float32 weights are stored as float16, each cast back by a ``Cast`` node.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Inputs, outputs and arithmetic stay
    float32 (onnxruntime folds the casts when the session starts); each weight is rounded once to float16
    (relative error up to 2**-11), so outputs move by about 1e-3 of their scale.
    """
    import onnx
    from onnx import numpy_helper
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"proto must be an onnx.ModelProto (onnx_model's result), got {type(proto).__name__}")
    proto = copy.deepcopy(proto)
    graph, casts, kept = proto.graph, [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype("float16"), init.name + ".float16")
        kept.append(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                           name=init.name + ".cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


class ExportedFile(NamedTuple):
    """One file :func:`export_teaching_onnx` wrote: its path, size in bytes and sha256 (hex).

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet)."""
    path: Path
    bytes: int
    sha256: str


def export_teaching_onnx(path, weights: str = "float32", model: nn.Module | None = None) -> list[ExportedFile]:
    """Write the teaching ZFNet's browser model to folder ``path``: the .onnx file and a .json that describes it.

    Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
    (book/occlusion). ``weights``: "float32" (``zfnet_teaching.onnx``) or "float16" (``zfnet_teaching.fp16.onnx``,
    see :func:`to_float16`). ``model``: a flat network to export instead of the shipped teaching ZFNet
    (``zfviz.checkpoints.load_teaching_zfnet``), with ``.config['input_size']``. The .json gives the page the
    inputs' and outputs' names and shapes, the opset, the input size and the model file's sha256.
    Returns the :class:`ExportedFile` of each file written, model first. The folder is created if missing;
    files are written whole (to a temporary name, then renamed).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder name (str or pathlib.Path), got {type(path).__name__}")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if model is None:
        model, _ = checkpoints.load_teaching_zfnet()
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"path must be a folder; {folder} is a file")
    proto = onnx_model(model, weights)
    name = MODEL_FILE if weights == "float32" else MODEL_FILE.replace(".onnx", ".fp16.onnx")
    model_bytes = proto.SerializeToString()
    wrapper = BrowserZFNet(model)
    shapes = [tuple(t.shape[1:]) for t in wrapper.example_inputs()]
    with torch.no_grad():
        outs = wrapper(*wrapper.example_inputs())
    card = {
        "model": name, "sha256": hashlib.sha256(model_bytes).hexdigest(), "bytes": len(model_bytes),
        "opset": OPSET, "weights": weights, "config": dict(getattr(wrapper.net, "config", {})),
        "inputs": {n: ["N" if n == "image" else "T", *s] for n, s in zip(input_names(wrapper.net), shapes)},
        "outputs": {n: ["T" if n == "projection" else "N", *o.shape[1:]]
                    for n, o in zip(output_names(wrapper.net), outs)},
        "preprocessed": "image is zfviz.data.Preprocess's output: (pixels in [0, 1] - mean image) / channel std",
    }
    written = [_write(folder / name, model_bytes),
               _write(folder / name.replace(".onnx", ".json"), (json.dumps(card, indent=1) + "\n").encode())]
    return written


def _write(path: Path, content: bytes) -> ExportedFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return ExportedFile(path, len(content), hashlib.sha256(content).hexdigest())
