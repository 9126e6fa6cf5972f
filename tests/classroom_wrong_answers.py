"""A plausible wrong answer per graded exercise, for tests/test_classroom.py: the hidden tests must fail on each.

Each is the mistake a student is likely to make, written as the student's answer cell would be: it defines
the same names as the answer cell, in the chapter's namespace (torch, F, nn, zfviz's modules, the chapter's
variables).
"""

WRONG_ANSWERS = {
    # Unpooling with PyTorch's MaxUnpool2d, which keeps one of the colliding values instead of adding them.
    "deconvnet-ex1": """
x4 = torch.tensor([[1., 0., 2., 0., 3.], [0., 4., 0., 1., 0.], [2., 0., 10., 0., 8.],
                   [0., 1., 0., 6., 0.], [3., 0., 2., 0., 9.]]).view(1, 1, 5, 5)
pooled4, switches4 = F.max_pool2d(x4, 3, stride=2, ceil_mode=True, return_indices=True)
signal4 = torch.tensor([[1., 10.], [100., 1000.]]).view(1, 1, 2, 2)
up4 = nn.MaxUnpool2d(3, stride=2)(signal4, switches4, output_size=(5, 5))
centre = up4[0, 0, 2, 2].item()
""",
    # Filtering down with the filter as it is, not flipped (a correlation where the transpose is a convolution).
    "deconvnet-ex2": """
edge = torch.tensor([[1., 0., -1.]] * 3).view(1, 1, 3, 3)
conv_edge = nn.Conv2d(1, 1, 3, stride=1, bias=False)
with torch.no_grad():
    conv_edge.weight.copy_(edge)
s2 = torch.tensor([[1., 1.], [0., 0.]]).view(1, 1, 2, 2)
down2 = F.conv_transpose2d(s2, edge.flip(2, 3))
by_hand2 = down2[0, 0]
""",
    # "Silent" read as "has a zero somewhere" (amin) instead of "zero everywhere" (amax).
    "deconvnet-ex3": """
fmap2 = deconv.feature_map(model, x, 2)[0]
silent = (fmap2.amin(dim=(1, 2)) == 0).nonzero().flatten().tolist()
flat = deconv.project(model, x, 2, silent[0])
best = deconv.top_activations(model, val, 2, k=1, channels=silent, preprocess=preprocess)
""",
}
