"""The op library. Importing this package registers every op family.

One module per family; each registers its ops with ``register(OpDef(...))`` at import:

- ``conv``: conv_stack                         - ``position``: soft_position_embedding, learned_position_embedding
- ``tensor``: rearrange, reduce, split, concat - ``mlp``: mlp, layer_norm, linear
- ``slot_attention``: slot_attention            - ``decoders``: spatial_broadcast_decoder
- ``composite``: alpha_composite, occlusion_composite
- ``soft_argmax``: soft_argmax                 - ``refinement``: transformer_refinement
- ``segformer`` (feature generators): segformer, unet_features
- ``glimpse``: latent_split, glimpse_generator, spatial_transformer
- ``background``: background_autoencoder
- ``vit_tokens``: patch_embedding, sincos_position_embedding, random_masking, class_tokens
- ``vit``: transformer_encoder, vit_decoder
- ``oc_mae``: object_function, broadcast_unshuffle, unpatchify
- ``filterbank``: gaussian_read, gaussian_write (DRAW attention)
- ``asae``: localization_cnn, region_autoencoder, background_network
- ``parameter``: parameter (a learned tensor)
- ``attention``: cross_attention (queries read inputs, no competition)
- ``arith``: add, subtract, zeros_like (element-wise)
"""
from ocdsl.ops.registry import OpDef, Port, Symmetry, all_ops, get, names, register

# Import order does not matter; each import registers that family's ops.
from ocdsl.ops import (composite, conv, decoders, mlp, position,  # noqa: F401,E402
                       slot_attention, tensor)
from ocdsl.ops import soft_argmax  # noqa: F401,E402
from ocdsl.ops import refinement, segformer  # noqa: F401,E402
from ocdsl.ops import glimpse  # noqa: F401,E402
from ocdsl.ops import background  # noqa: F401,E402
from ocdsl.ops import oc_mae, vit, vit_tokens  # noqa: F401,E402
from ocdsl.ops import asae, attention, filterbank, parameter  # noqa: F401,E402
from ocdsl.ops import arith  # noqa: F401,E402

__all__ = ["OpDef", "Port", "Symmetry", "all_ops", "get", "names", "register"]
