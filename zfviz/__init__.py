"""zfviz: the companion package of the ZFNet book (Zeiler & Fergus 2014, arXiv:1311.2901 v3).

Modules mirror the paper: ``models`` (§2, Fig. 3), ``deconv`` (§2.1, Fig. 1), ``data`` (offline data sets), ``train`` (§3),
``plotting`` (figures), ``widgets`` (live explorers for Jupyter/Colab). Each public function's docstring names the chapter that explains it.
"""
from . import data, deconv, models, plotting, widgets
# zfviz.train is not imported here, so that `python -m zfviz.train` runs it fresh: `from zfviz import train`.
from .models import alexnet_single, load_teaching_zfnet, zfnet

__version__ = "0.1.0"
__all__ = ["data", "deconv", "models", "plotting", "widgets", "zfnet", "alexnet_single", "load_teaching_zfnet"]
