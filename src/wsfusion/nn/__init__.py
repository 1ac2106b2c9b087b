"""PyG message-passing layers over cross-modal graphs, and the dense reference layer.

``WSLinear`` (scalar nodes) and the dense ``MaskedLinear`` it must equal;
``CrossModalConv`` and ``CrossModalAttentionConv`` (segment or token nodes).
"""

import warnings

from wsfusion.nn.cross_modal_attention_conv import CrossModalAttentionConv
from wsfusion.nn.cross_modal_conv import CrossModalConv
from wsfusion.nn.masked_linear import MaskedLinear
from wsfusion.nn.ws_linear import EdgeWeightedLinear, WSLinear

# torch warns once per process that sparse CSR is "beta"; the kernels used here are stable.
warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta state")

__all__ = ["EdgeWeightedLinear", "WSLinear", "MaskedLinear", "CrossModalConv", "CrossModalAttentionConv"]
