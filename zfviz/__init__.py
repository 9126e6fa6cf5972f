"""zfviz: the companion package of the ZFNet book (Zeiler & Fergus 2014, arXiv:1311.2901 v3).

Modules mirror the paper, data flowing one way: ``paper`` (its numbers), ``data``, ``layers``, ``models`` (§2,
Fig. 3), ``pretrained``, ``checkpoints``, ``train`` (§3), ``deconv`` (§2.1, Fig. 1-2), ``evolution`` (Fig. 4),
``activations``, ``invariance`` (Fig. 5), ``filters`` (Fig. 6), ``correspondence`` (§4.3), ``occlusion`` (§4.2,
Fig. 7), ``transfer`` (§5), ``plotting``, ``views``, ``widgets`` (live explorers) and ``static`` (the published
pages' explorers); README.md has the table. Each public function's docstring names the chapter that explains it.
"""
from . import data, deconv, models, plotting
# Not imported here: zfviz.train (so that `python -m zfviz.train` runs it fresh) and zfviz.widgets (so that
# the package works where ipywidgets is absent, e.g. a GPU server). Use `from zfviz import train, widgets`.
from .checkpoints import load_teaching_zfnet
from .models import alexnet_single, zfnet

__version__ = "0.1.0"
__all__ = ["data", "deconv", "models", "plotting", "zfnet", "alexnet_single", "load_teaching_zfnet"]
