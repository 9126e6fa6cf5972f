"""zfviz.export (issue 18): the ONNX model the browser runs computes what zfviz computes in PyTorch.

Each output is run with onnxruntime (CPU, the kernels onnxruntime-web compiles to WebAssembly) and compared with
zfviz's own functions: the network's logits, every layer's feature maps, deconvnet projections of several units
of every layer (zfviz.deconv.project) and the quantities of Fig. 7 (zfviz.occlusion.occlusion_panels). Tolerances
are relative to each output's scale: another CPU sums in another order.
"""
import json

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from zfviz import deconv, export, occlusion  # noqa: E402

REL = 1e-4            # float32 graph vs PyTorch: measured up to ~1e-6 of each output's largest value
REL_HALF = 2e-2       # float16 weights: each weight rounded once (2**-11), the error grows through 8 layers


def _session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _close(got, want, rel=REL, what=""):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    scale = np.abs(want).max()
    assert scale > 0, f"{what}: the reference is zero everywhere, so the comparison proves nothing"
    err = np.abs(got - want).max()
    assert err <= rel * scale, f"{what}: max |onnx - torch| = {err:.3g}, {err / scale:.2g} of the scale {scale:.3g}"
    return err / scale


@pytest.fixture(scope="module")
def net(teaching):
    model, preprocess, val = teaching
    images, labels = val.tensors()
    proto = export.onnx_model(model)
    wrapper = export.BrowserZFNet(model)
    return model, preprocess(images[:8]).float(), labels[:8], proto, _session(proto), wrapper.map_shapes


def _feeds(x, map_shapes, tops=None, count=1):
    """image x, and zeros for every top but those given ({layer: array})."""
    feeds = {"image": np.ascontiguousarray(x.numpy())}
    for k, shape in enumerate(map_shapes, start=1):
        feeds[f"top{k}"] = np.zeros((count, *shape), np.float32)
    for k, top in (tops or {}).items():
        feeds[f"top{k}"] = top
    return feeds


def _isolate(fmap, channel, position=None):
    """fmap (T, C, h, w) numpy: zeros but ``channel`` at ``position`` (y, x), or at its first argmax, per image."""
    top = np.zeros_like(fmap)
    for i in range(len(fmap)):
        flat = fmap[i, channel].reshape(-1)
        j = flat.argmax() if position is None else position[0] * fmap.shape[3] + position[1]
        top[i, channel].reshape(-1)[j] = flat[j]
    return top


def test_the_graph_is_valid_and_has_the_documented_interface(net):
    model, _, _, proto, session, shapes = net
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == export.OPSET >= 17
    assert [i.name for i in session.get_inputs()] == export.input_names(model)
    assert [o.name for o in session.get_outputs()] == export.output_names(model) == [
        "logits", "probabilities", "relu1", "relu2", "relu3", "relu4", "relu5", "relu5_totals", "relu5_peaks",
        "projection"]
    size = model.config["input_size"]
    assert session.get_inputs()[0].shape == ["N", 3, size, size]
    assert [i.shape for i in session.get_inputs()[1:]] == [["T", *s] for s in shapes]
    ops = {}
    for node in proto.graph.node:
        ops.setdefault(node.op_type, []).append(node)
    # the deconvnet as Fig. 1 draws it: switches from max-pooling, unpooling that adds, transposed filters no bias
    assert any(len(n.output) == 2 for n in ops["MaxPool"])
    assert [onnx.helper.get_attribute_value(a) for n in ops["ScatterElements"] for a in n.attribute
            if a.name == "reduction"] == [b"add", b"add"]
    assert len(ops["ConvTranspose"]) == 5 and all(len(n.input) == 2 for n in ops["ConvTranspose"])
    # one copy of the weights: each conv's filters serve both Conv and ConvTranspose
    names = [i.name for i in proto.graph.initializer]
    assert len(names) == len(set(names))
    assert sum(np.prod(i.dims) for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT) \
        == sum(p.numel() for p in model.parameters())


def test_logits_probabilities_and_every_feature_map_equal_pytorch(net):
    model, x, _, _, session, shapes = net
    outs = dict(zip(export.output_names(model), session.run(None, _feeds(x, shapes))))
    with torch.no_grad():
        logits = model(x)
    _close(outs["logits"], logits, what="logits")
    _close(outs["probabilities"], logits.softmax(dim=1), what="probabilities")
    assert (outs["probabilities"].argmax(1) == logits.argmax(1).numpy()).all()
    for layer in range(1, 6):
        fmap = deconv.feature_map(model, x, layer)
        _close(outs[f"relu{layer}"], fmap, what=f"relu{layer}")
        if layer == 5:
            _close(outs["relu5_totals"], fmap.sum(dim=(2, 3)), what="relu5_totals")
            _close(outs["relu5_peaks"], fmap.amax(dim=(2, 3)), what="relu5_peaks")
    assert not outs["projection"].any()                          # all tops zero: nothing to project


@pytest.mark.parametrize("layer", [1, 2, 3, 4, 5])
def test_projections_equal_deconv_project(net, layer):
    model, x, _, _, session, shapes = net
    x = x[:3]
    fmap = session.run([f"relu{layer}"], _feeds(x, shapes))[0]
    strongest = np.argsort(-fmap[:2].max(axis=(2, 3)).max(axis=0), kind="stable")[:2]   # two live maps
    second = np.argsort(-fmap[0, strongest[0]].reshape(-1), kind="stable")[1]      # a fixed unit, not the argmax
    cases = [(int(c), None) for c in strongest] + [(int(strongest[0]), divmod(int(second), fmap.shape[3]))]
    for channel, position in cases:
        top = _isolate(fmap[:2], channel, position)             # T = 2 of N = 3 images
        got = session.run(["projection"], _feeds(x, shapes, {layer: top}, count=2))[0]
        want = deconv.project(model, x[:2], layer, channel, position)
        _close(got, want, what=f"layer {layer} map {channel} at {position or 'its argmax'}")


def test_occlusion_quantities_equal_occlusion_panels(net):
    model, x, labels, _, session, shapes = net
    image, target, size, stride = x[1], int(labels[1]), 48, 36
    panels = occlusion.occlusion_panels(model, image, target, size, stride)
    ny, nx = panels.prob.shape
    # what the page does: the occluded copies, row-major, built beside the model; the grey square is fill=0
    copies = torch.stack([occlusion.occlude(image, (i * stride, j * stride), size, 0.0)
                          for i in range(ny) for j in range(nx)])
    clean = session.run(None, _feeds(image[None], shapes))
    outs = dict(zip(export.output_names(model), session.run(None, _feeds(copies, shapes))))
    clean = dict(zip(export.output_names(model), clean))
    channel = int(clean["relu5_peaks"][0].argmax())
    fmap = clean["relu5"][0, channel]
    position = tuple(int(v) for v in np.unravel_index(fmap.argmax(), fmap.shape))
    assert (channel, position) == (panels.feature_channel, panels.feature_position)
    probs = outs["probabilities"]
    _close(probs[:, target].reshape(ny, nx), panels.prob, what="Fig. 7 (d)")
    _close(probs.max(1).reshape(ny, nx), panels.top_prob, what="Fig. 7 (e) probability")
    margin = np.sort(probs, axis=1)[:, -1] - np.sort(probs, axis=1)[:, -2]
    sure = margin > 1e-4                                          # a near-tie may flip on another CPU
    assert sure.mean() > 0.5
    assert (probs.argmax(1)[sure] == panels.top_class.flatten().numpy()[sure]).all()
    _close(outs["relu5_totals"][:, channel].reshape(ny, nx), panels.feature_total, what="Fig. 7 (b)")
    assert abs(float(clean["probabilities"][0, target]) - panels.image_prob) <= REL
    top = _isolate(clean["relu5"], channel, position)
    got = session.run(["projection"], _feeds(image[None], shapes, {5: top}))[0][0]
    _close(got, panels.projection, what="Fig. 7 (c)")


def test_float16_weights_halve_the_file_and_keep_the_outputs(net):
    model, x, _, proto, session, shapes = net
    half = export.onnx_model(model, weights="float16")
    onnx.checker.check_model(half, full_check=True)
    size32, size16 = len(proto.SerializeToString()), len(half.SerializeToString())
    assert 0.45 < size16 / size32 < 0.55
    x = x[:3]
    fmap = session.run(["relu3"], _feeds(x, shapes))[0]
    feeds = _feeds(x, shapes, {3: _isolate(fmap, int(fmap[0].max(axis=(1, 2)).argmax()))}, count=3)
    full = dict(zip(export.output_names(model), session.run(None, feeds)))
    small = dict(zip(export.output_names(model), _session(half).run(None, feeds)))
    for name in ("probabilities", "relu1", "relu5", "projection"):
        _close(small[name], full[name], rel=REL_HALF, what=f"float16 {name}")


def test_export_writes_the_model_and_its_card_with_stable_hashes(tmp_path, teaching):
    model = teaching[0]
    first = export.export_teaching_onnx(tmp_path / "a", model=model)
    again = export.export_teaching_onnx(tmp_path / "b", model=model)
    assert [f.path.name for f in first] == ["zfnet_teaching.onnx", "zfnet_teaching.json"]
    assert [(f.bytes, f.sha256) for f in first] == [(f.bytes, f.sha256) for f in again]   # deterministic
    for f in first:
        assert f.path.stat().st_size == f.bytes
    card = json.loads(first[1].path.read_text())
    assert card["sha256"] == first[0].sha256 and card["bytes"] == first[0].bytes
    assert card["opset"] == export.OPSET and card["weights"] == "float32"
    assert list(card["inputs"]) == export.input_names(model)
    assert card["outputs"]["projection"] == ["T", 3, model.config["input_size"], model.config["input_size"]]
    assert 10e6 < first[0].bytes < 13e6                          # 2.9 M float32 weights


def test_bad_arguments_are_refused_with_a_clear_message(tmp_path, teaching):
    model = teaching[0]
    with pytest.raises(TypeError, match="path must be a folder"):
        export.export_teaching_onnx(123, model=model)
    with pytest.raises(ValueError, match="weights must be one of"):
        export.export_teaching_onnx(tmp_path, weights="int8", model=model)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="must be a folder"):
        export.export_teaching_onnx(tmp_path / "file", model=model)
    with pytest.raises(ValueError, match="weights must be one of"):
        export.onnx_model(model, weights="half")
    with pytest.raises(TypeError, match="flat conv network"):
        export.BrowserZFNet("zfnet")
    with pytest.raises(ValueError, match="classifier"):
        export.BrowserZFNet(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    with pytest.raises(ValueError, match="in-place"):
        export.BrowserZFNet(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(TypeError, match="ModelProto"):
        export.to_float16(b"not a model")
