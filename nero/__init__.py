"""Nero, Madam and LAMB exactly as "Learning by Turning" (ICML 2021) ran them.

    from nero import Nero
    optimizer = Nero(model.parameters(), lr=0.01)   # projects the weights at construction

``Nero`` has the ablation switches of Fig. 1 (``mean_constraint``, ``norm_constraint``);
``Madam(constraints=True)`` and ``LAMB(constraints=True)`` are the constrained variants of Fig. 2.
The library depends on torch only.
"""

from ._functional import neuron_mean, neuron_norm, project_
from .lamb import LAMB
from .madam import Madam
from .nero import Nero

__all__ = ["Nero", "Madam", "LAMB", "project_", "neuron_norm", "neuron_mean"]
__version__ = "0.1.0"
