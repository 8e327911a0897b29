"""The model zoo: Classifier-inRAC, its ablations and depth variants, and two baselines.

One entry point, :func:`build_model`, and a registry :data:`MODELS`::

    from scintilab.models import build_model, list_models
    model = build_model("inrac", input_shape=(1024, 256, 1), num_classes=3)

=============  =====================================================================
name           model
=============  =====================================================================
inrac          Classifier-inRAC (Guo et al. Table 1): residual + CBAM inside, [2,3,5,2]
outrac         Classifier-outRAC: CBAM after the residual addition
plain          Table 6: no residual, no attention
attention      Table 6: attention, no residual
residual       Table 6: residual, no attention
classifier18   Table 7: inRAC blocks, [2,2,2,2]
classifier34   Table 7: inRAC blocks, [3,4,6,3]
vgg11          Table 9: VGG configuration A (``batch_norm`` option)
inception_v1   Table 9: GoogLeNet, 9 inception modules, no auxiliary heads
=============  =====================================================================

Models are Keras 3 functional models written with ``keras.layers``/``keras.ops`` only,
so they run on the TensorFlow, JAX and PyTorch backends; the only custom layer,
:class:`~scintilab.models.cbam.CBAM`, is registered for ``.keras`` saving.
"""

from __future__ import annotations

from scintilab.models.cbam import CBAM, cbam_param_count
from scintilab.models.introspect import (
    attention_maps_model,
    cbam_layers,
    count_params_table,
    feature_model,
    forward_macs,
    last_conv_layer_name,
    weight_layer_depth,
)
from scintilab.models.registry import MODELS, build_model, list_models

__all__ = [
    "CBAM",
    "MODELS",
    "attention_maps_model",
    "build_model",
    "cbam_layers",
    "cbam_param_count",
    "count_params_table",
    "feature_model",
    "forward_macs",
    "last_conv_layer_name",
    "list_models",
    "weight_layer_depth",
]
