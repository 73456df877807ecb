"""Reusable network blocks, one per file; models build on these, never the other way round."""

from deepfer.layers.spatial_transformer import SpatialTransformer, stn_warp

__all__ = ["SpatialTransformer", "stn_warp"]
