"""Reusable network blocks, one per file; models build on these, never the other way round."""

from deepfer.layers.conv_stages import conv_bn_relu, conv_stages
from deepfer.layers.grid_attention import GridAttention
from deepfer.layers.pooling import cell_pool
from deepfer.layers.region_attention import RegionAttention
from deepfer.layers.self_attention import NonLocalBlock
from deepfer.layers.spatial_transformer import SpatialTransformer, stn_warp
from deepfer.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "GridAttention", "NonLocalBlock", "RegionAttention", "SpatialTransformer", "SqueezeExcite", "cell_pool",
    "conv_bn_relu", "conv_stages", "stn_warp",
]
