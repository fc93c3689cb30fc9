"""Datasets (MVTec 3D-AD, Eyecandies, your own folders) and their data transforms.

The synthetic data generators live in ``mmad.datasets.synthetic``, imported only where used.
"""
from .base_dataset import BaseADDataset, build_pipeline
from .eyecandies import EyecandiesDataset
from .folder import FolderDataset
from .mvtec3d import MVTec3DDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['BaseADDataset', 'build_pipeline', 'MVTec3DDataset', 'EyecandiesDataset', 'FolderDataset']
