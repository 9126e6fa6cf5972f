"""The former home of three sections of the paper, kept so that ``from zfviz.features import ...`` still works.

Each section now has its own module; this one only re-exports their public names (the same objects):

- ``zfviz.activations``: :func:`layer_features`, the feature vector of the paper's layers 1-7 from one
  forward pass (explained in the chapter "Feature invariance", book/invariance).
- ``zfviz.invariance``: Fig. 5, :func:`transform`, :data:`TRANSFORMS`, :func:`invariance`, :class:`Invariance`
  (the chapter "Feature invariance", book/invariance).
- ``zfviz.correspondence``: §4.3 and Table 1, :func:`part_squares`, :func:`random_squares`, :func:`mask_region`,
  :func:`correspondence`, :func:`sign_change_score`, :func:`pair_sign_change` (the chapter "§4.3 Correspondence",
  book/correspondence).
- ``zfviz.filters``: Fig. 6's filter statistics, :func:`top_norm_share`, :func:`dead_filters`,
  :func:`frequency_bands`, :func:`shift_variation`, :func:`neighbour_correlation` (the chapters "Architecture
  selection", book/architecture, and "Training ZFNet", book/training), and §4's readings of the visualisations,
  :func:`projection_legibility`, :class:`Legibility`, :func:`chance_purity` (the chapter "What each layer sees",
  book/visualisation).

New code imports from those modules; none of them imports this one.
"""
from __future__ import annotations

from .activations import layer_features
from .correspondence import (correspondence, mask_region, pair_sign_change, part_squares, random_squares,
                             sign_change_score)
from .filters import (Legibility, chance_purity, dead_filters, frequency_bands, neighbour_correlation,
                      projection_legibility, shift_variation, top_norm_share)
from .invariance import TRANSFORMS, Invariance, invariance, transform

__all__ = ["layer_features", "transform", "TRANSFORMS", "invariance", "Invariance", "pair_sign_change", "chance_purity",
           "sign_change_score", "part_squares", "random_squares", "mask_region", "correspondence", "top_norm_share",
           "dead_filters", "frequency_bands", "shift_variation", "neighbour_correlation", "projection_legibility",
           "Legibility"]
