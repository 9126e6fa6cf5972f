"""zfviz: the companion package of the ZFNet book (Zeiler & Fergus 2014, arXiv:1311.2901 v3).

Modules mirror the paper: ``models`` (§2, Fig. 3), ``deconv`` (§2.1, Fig. 1), ``data`` (offline data sets), ``train`` (§3),
``plotting`` (figures), ``widgets`` (live explorers for Jupyter/Colab). Each public function's docstring names the chapter that explains it.
"""
from . import data, deconv, models, plotting
# Not imported here: zfviz.train (so that `python -m zfviz.train` runs it fresh) and zfviz.widgets (so that
# the package works where ipywidgets is absent, e.g. a GPU server). Use `from zfviz import train, widgets`.
from .checkpoints import load_teaching_zfnet
from .models import alexnet_single, zfnet

__version__ = "0.1.0"
__all__ = ["data", "deconv", "models", "plotting", "zfnet", "alexnet_single", "load_teaching_zfnet"]
