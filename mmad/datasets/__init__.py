"""Datasets (MVTec 3D-AD, Eyecandies), their data transforms and the synthetic data generator."""
from .eyecandies import EyecandiesDataset
from .mvtec3d import MVTec3DDataset
from .synthetic import make_synthetic_mvtec3d, render_synthetic_sample
from .transforms import *  # noqa: F401,F403

__all__ = ['MVTec3DDataset', 'EyecandiesDataset', 'make_synthetic_mvtec3d', 'render_synthetic_sample']
