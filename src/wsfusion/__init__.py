"""wsfusion: multi-modal fusion over Watts-Strogatz cross-modal graphs.

Modality features become nodes of a Watts-Strogatz small-world graph and
PyTorch Geometric message passing carries out the sparse cross-modal fusion.
Classic encoders and fusion modules live beside it as baselines.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
