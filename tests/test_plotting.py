"""zfviz.plotting: the figure helpers that compute something (which colours, which classes) before drawing."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from zfviz import plotting  # noqa: E402


def test_show_top_class_colours_the_most_frequent_winners_and_greys_the_rest():
    # Class 5 wins 9 cells, 2 wins 4, then nine classes win one cell each: eight colours, the ninth one grey.
    top = torch.tensor([5] * 9 + [2] * 4 + list(range(10, 19)) + [5] * 3).view(5, 5)
    names = [f"c{k}" for k in range(20)]
    fig, ax = plt.subplots()
    named = plotting.show_top_class(ax, top, names)
    assert named[:2] == [5, 2] and len(named) == 8 and set(named[2:]) < set(range(10, 19))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [names[c] for c in named]
    rgba = ax.get_images()[0].to_rgba(ax.get_images()[0].get_array())      # (5, 5, 4) in [0, 1]
    for (i, j), c in np.ndenumerate(top.numpy()):
        want = plotting.TOP_CLASS_COLOURS[named.index(c)] if c in named else plotting.OTHER_CLASSES
        assert np.allclose(rgba[i, j], to_rgba(want), atol=1e-6), (i, j, c)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"top_class must be an integer tensor \(ny, nx\)"):
        plotting.show_top_class(ax, top.float(), names)
