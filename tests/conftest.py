"""Fixtures the test files share."""
import os

import pytest
import torch

from zfviz import checkpoints, data


@pytest.fixture(scope="module")
def teaching():
    """(the shipped teaching ZFNet, its preprocess, the clip-art validation set); one per test module."""
    torch.set_num_threads(int(os.environ.get("ZFVIZ_THREADS", "2")))   # as the chapters: 1 in the 1-thread passes
    model, preprocess = checkpoints.load_teaching_zfnet()
    return model, preprocess, data.ClipArt("val")
