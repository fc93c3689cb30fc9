"""Synthetic data in the on-disk layouts of MVTec 3D-AD and Eyecandies, for tests and demos without the real data.

Not imported by ``import mmad.datasets``; import it as ``mmad.datasets.synthetic``. Modules: ``scene`` (a
category's look, a sample's pose, the object's height field, ray casting), ``defects`` (modality-specific defect
regions), ``rendering`` (one sample: shading, sensor noise, missing points, ground truth), ``writing`` (the
MVTec 3D-AD tree) and ``eyecandies`` (the Eyecandies tree: six lightings, 16-bit depth with its range, normals).

Everything is deterministic given ``seed``: one sample can be rendered again alone, with or without its defect
(:func:`render_synthetic_sample`).
"""
from .defects import COLOUR_DEFECTS, DEFECT_TYPES, GEOMETRY_DEFECTS, GOOD
from .eyecandies import make_synthetic_eyecandies
from .rendering import SPLITS, SyntheticSample, render_synthetic_sample
from .writing import make_synthetic_mvtec3d

__all__ = [
    'COLOUR_DEFECTS', 'DEFECT_TYPES', 'GEOMETRY_DEFECTS', 'GOOD', 'SPLITS', 'SyntheticSample',
    'render_synthetic_sample', 'make_synthetic_mvtec3d', 'make_synthetic_eyecandies'
]
