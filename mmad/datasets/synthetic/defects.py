"""Defects of the synthetic data: modality-specific regions on the object.

- ``color``: a stain of a clearly different hue; the point cloud is left untouched.
- ``dent``: a smooth depression of 2-5 mm; the RGB image is rendered from the intact surface.
- ``crack``: a thin groove of 3-6 mm depth with a dark interior and a few missing points; both modalities change.

Default defect sizes, as fractions of the shorter image side: stain and dent radius 0.03-0.06 (about 0.3-1.1 %
of the image area), crack length 0.10-0.20 and width 0.012-0.02. One in five defective samples holds a second
region of the same type. Ground-truth masks hold the region ids 255, 254, ... (real masks use ids such as
253-255, not only 255) and are all zero for good samples.
"""
from __future__ import annotations

import colorsys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .scene import Scene, hsv_to_rgb, intact_object_height, rotate_into_frame

DEFECT_TYPES = ('color', 'dent', 'crack')
GOOD = 'good'
# Defect kinds that change the point cloud and the RGB image, respectively.
GEOMETRY_DEFECTS = frozenset({'dent', 'crack'})
COLOUR_DEFECTS = frozenset({'color', 'crack'})
# Ground-truth value of the first, second, ... defect region of a sample.
REGION_IDS = (255, 254, 253)

# Default defect sizes as fractions of the shorter image side (see the module docstring).
STAIN_RADIUS = (0.03, 0.06)
DENT_RADIUS = (0.03, 0.06)
DENT_DEPTH_M = (0.002, 0.005)
CRACK_LENGTH = (0.10, 0.20)
CRACK_WIDTH = (0.012, 0.02)
CRACK_DEPTH_M = (0.003, 0.006)
SECOND_REGION_PROB = 0.2


@dataclass(frozen=True)
class Defect:
    """One defect region in plane coordinates (metres).

    ``radius`` is the stain / dent radius or the crack half-length, ``width`` the crack half-width, ``depth`` the
    deformation in metres (0 for stains), ``harmonics`` (amplitude, phase) rows that make the outline irregular.
    """

    kind: str
    centre: np.ndarray
    radius: float
    angle: float
    width: float
    depth: float
    colour: np.ndarray
    harmonics: np.ndarray


def _irregular_radius(defect: Defect, angle: np.ndarray) -> np.ndarray:
    orders = np.arange(2, 2 + len(defect.harmonics))
    waves = defect.harmonics[:, 0, None] * np.cos(orders[:, None] * angle.ravel()[None] + defect.harmonics[:, 1, None])
    return defect.radius * (1.0 + waves.sum(0).reshape(angle.shape))


def _defect_frame(defect: Defect, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rotate_into_frame(s, t, defect.centre, defect.angle)


def blob_radius(defect: Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Distance to the centre divided by the irregular outline radius: < 1 inside the region."""
    x, y = _defect_frame(defect, s, t)
    return np.hypot(x, y) / _irregular_radius(defect, np.arctan2(y, x))


def crack_profile(defect: Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """1 on the crack's centre line, falling to 0 at its edge; 0 outside."""
    along, across = _defect_frame(defect, s, t)
    amplitude, phase = defect.harmonics[0]
    centre_line = amplitude * defect.radius * np.sin(np.pi * along / defect.radius + phase)
    half_width = defect.width * np.sqrt(np.clip(1.0 - (along / defect.radius) ** 2, 0.0, 1.0))
    offset = np.abs(across - centre_line)
    inside = offset < half_width
    return np.where(inside, 1.0 - (offset / np.where(inside, half_width, 1.0)) ** 2, 0.0)


def _deformation(defect: Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Depth (m) by which the defect lowers the surface."""
    if defect.kind == 'dent':
        support = np.clip(1.0 - (blob_radius(defect, s, t) / 1.35) ** 2, 0.0, 1.0)
        return defect.depth * support**2
    return defect.depth * crack_profile(defect, s, t)


def defect_region(defect: Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Annotated pixels: the stain, the dent where it lowered the surface by > 20 % of its depth, the crack."""
    if defect.kind == 'crack':
        return crack_profile(defect, s, t) > 0.0
    return blob_radius(defect, s, t) < 1.0


def surface_height(scene: Scene, defects: Sequence[Defect]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Height field (m) of the object with its geometric defects, as a function of plane coordinates."""
    def height(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        intact = intact_object_height(scene, s, t)
        lowered = intact - sum((_deformation(d, s, t) for d in defects), np.zeros_like(intact))
        return np.clip(lowered, 0.0, None)

    return height


def sample_defects(rng: np.random.Generator, scene: Scene, kind: str) -> tuple[Defect, ...]:
    """Draw one or two defect regions of one kind, centred on the object's top."""
    metres_per_pixel = scene.plane_origin[2] / scene.focal
    side_m = min(scene.height, scene.width) * metres_per_pixel
    count = 2 if rng.random() < SECOND_REGION_PROB else 1
    defects = []
    for _ in range(count):
        limit = 0.45 if kind == 'crack' else 0.55
        radial, polar = limit * np.sqrt(rng.random()), rng.uniform(0.0, 2.0 * np.pi)
        local = radial * scene.object_axes * np.array([np.cos(polar), np.sin(polar)])
        cos, sin = np.cos(scene.object_angle), np.sin(scene.object_angle)
        centre = scene.object_centre + np.array([cos * local[0] - sin * local[1], sin * local[0] + cos * local[1]])
        hue = colorsys.rgb_to_hsv(*scene.albedo)[0]
        colour = hsv_to_rgb(hue + rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.85))
        if kind == 'crack':
            radius = 0.5 * rng.uniform(*CRACK_LENGTH) * side_m
            width = max(0.5 * rng.uniform(*CRACK_WIDTH) * side_m, 0.75 * metres_per_pixel)
            depth = min(rng.uniform(*CRACK_DEPTH_M), 0.5 * scene.object_height)
            harmonics = np.array([[rng.uniform(0.05, 0.2), rng.uniform(0.0, 2.0 * np.pi)]])
        else:
            radius = rng.uniform(*(STAIN_RADIUS if kind == 'color' else DENT_RADIUS)) * side_m
            width = 0.0
            depth = rng.uniform(*DENT_DEPTH_M) if kind == 'dent' else 0.0
            harmonics = np.stack([rng.uniform(0.0, 0.12, 3), rng.uniform(0.0, 2.0 * np.pi, 3)], -1)
        defects.append(Defect(kind=kind, centre=centre, radius=radius, angle=rng.uniform(0.0, 2.0 * np.pi),
                               width=width, depth=depth, colour=colour, harmonics=harmonics))
    return tuple(defects)
