"""Data transforms: loading, point-cloud geometry, resizing and packing."""
from .formatting import PackADInputs
from .geometry import XYZToDepth, XYZToNormals
from .loading import LoadMaskFromFile, LoadNormalsFromFile, LoadRGBFromFile, LoadXYZFromFile
from .processing import ResizeImage, ResizeMask

__all__ = [
    'LoadRGBFromFile', 'LoadXYZFromFile', 'LoadNormalsFromFile', 'LoadMaskFromFile', 'XYZToDepth', 'XYZToNormals',
    'ResizeImage', 'ResizeMask', 'PackADInputs'
]
