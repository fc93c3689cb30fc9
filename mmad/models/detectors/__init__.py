"""Detectors: the thin classes wiring teacher, students, losses and scoring."""
from .anomaly_maps import cosine_distance_map, gaussian_kernel1d, gaussian_smooth
from .crd import CRD
from .crd_branch import CRDBranch

__all__ = ['CRD', 'CRDBranch', 'cosine_distance_map', 'gaussian_kernel1d', 'gaussian_smooth']
