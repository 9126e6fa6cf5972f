"""The one device rule (zfviz.layers.model_device / to_model): every function computes where the model's
parameters are, in their dtype, whatever the images come as.

No second device is guaranteed here (CPU-only CI; the meta device cannot run the argument checks, which read
values), so the rule is checked with a second dtype, which goes through the same `to_model` call: a float64
copy of a float32 network must give float64 results that agree with the float32 ones, from float32 images.
A function that computed on the images' device and dtype instead would return float32.
"""
from __future__ import annotations

import pytest
import torch

from zfviz import activations, deconv, invariance, models, occlusion

CALLS = {
    "deconv.feature_map": lambda m, x: deconv.feature_map(m, x, 2),
    "deconv.project": lambda m, x: deconv.project(m, x, 2, 1, position=(1, 1)),
    "deconv.backprop": lambda m, x: deconv.backprop(m, x, 2, 1),
    "deconv.guided_backprop": lambda m, x: deconv.guided_backprop(m, x, 2, 1),
    "activations.layer_features": lambda m, x: activations.layer_features(m, x, [1, 6])[6],
    "occlusion.occlusion_map": lambda m, x: occlusion.occlusion_map(m, x[0], 1, size=16, stride=16),
    "invariance.invariance": lambda m, x: invariance.invariance(m, x, [0, 1], "translate", [0, 4], layers=[7]).distance[7][1],
}


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    single = models.zfnet(10, 0.125, 64).eval()
    double = models.zfnet(10, 0.125, 64).eval()
    double.load_state_dict(single.state_dict())
    return single, double.double()


@pytest.mark.parametrize("name", CALLS)
def test_functions_compute_in_the_models_dtype(nets, name):
    single, double = nets
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))      # float32 images
    a, b = CALLS[name](single, x), CALLS[name](double, x)
    assert a.dtype == torch.float32 and b.dtype == torch.float64, (a.dtype, b.dtype)
    scale = a.abs().max().item()
    assert scale > 0, "a silent result would not test anything"
    assert (a.double() - b).abs().max().item() <= 1e-4 * scale
