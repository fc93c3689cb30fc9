"""Data transforms: loading, point-cloud geometry, resizing, packing and the disk cache of derived arrays."""
from .cache import CachedTransforms, uncached_steps
from .depth_file import LoadDepthFromFile
from .formatting import PackADInputs
from .geometry import (
    DepthFromPoints,
    FitTablePlane,
    HeightFromPlane,
    NormalsFromDepth,
    NormalsFromPoints,
    XYZImageFromPoints,
    XYZToDepth,
)
from .loading import (
    LoadMaskFromFile,
    LoadNormalsFromFile,
    LoadRGBFromFile,
    LoadXYZFromDepthFile,
    LoadXYZFromFile,
    check_same_size,
)
from .processing import ResizeImage, ResizeMask

__all__ = [
    'LoadRGBFromFile', 'LoadXYZFromFile', 'LoadXYZFromDepthFile', 'LoadNormalsFromFile', 'LoadMaskFromFile',
    'LoadDepthFromFile',
    'check_same_size',
    'FitTablePlane', 'DepthFromPoints', 'XYZToDepth', 'NormalsFromDepth', 'NormalsFromPoints', 'HeightFromPlane',
    'XYZImageFromPoints', 'ResizeImage', 'ResizeMask', 'PackADInputs', 'CachedTransforms',
    'uncached_steps'
]
