"""Scenes of the synthetic data: a category's look, a sample's pose, the object's height field, ray casting.

A rendered scene is one smooth textured object (a rounded super-ellipse with a slightly domed top) on a slightly
tilted table plane, seen from 0.5-0.9 m by a pinhole camera (``x = (u - cx) z / f``, ``y = (v - cy) z / f``). The
look of a category (object shape, colour, camera, light) depends only on its name.
"""
from __future__ import annotations

import colorsys
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

_BISECTION_STEPS = 26
# Height above the table (m) from which a pixel counts as object.
OBJECT_MIN_HEIGHT_M = 0.001


@dataclass(frozen=True)
class _CategoryStyle:
    """What stays fixed within a category: camera, light, object shape and colour."""

    view_extent: float
    table_distance: float
    object_height: float
    object_size: float
    power: float
    aspect: float
    dome: float
    hsv: tuple[float, float, float]
    table_value: float
    texture_cell: float
    texture_amplitude: float
    light: np.ndarray


@dataclass(frozen=True)
class _ShadowStrip:
    """Band of missing points along one image border; ``side`` is 0 left, 1 right, 2 top, 3 bottom."""

    side: int
    width_fraction: float
    wave_amplitudes: np.ndarray
    wave_phases: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one intact sample; the noise fields come from ``noise_seed``."""

    height: int
    width: int
    focal: float
    plane_origin: np.ndarray
    plane_basis: np.ndarray
    object_centre: np.ndarray
    object_axes: np.ndarray
    object_angle: float
    object_height: float
    power: float
    dome: float
    albedo: np.ndarray
    table_albedo: np.ndarray
    texture_cell: float
    texture_amplitude: float
    light: np.ndarray
    hole_rate: float
    shadow: _ShadowStrip | None
    noise_seed: int


def name_key(name: str) -> int:
    """A stable 32-bit key of a name (CRC-32), for seeding."""
    return zlib.crc32(name.encode('utf-8'))


def category_style(category: str) -> _CategoryStyle:
    """The look of a category: drawn from a stream keyed by its name only."""
    rng = np.random.default_rng(name_key(category))
    tilt = np.deg2rad(rng.uniform(25.0, 40.0))
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    light = np.array([np.cos(azimuth) * np.sin(tilt), np.sin(azimuth) * np.sin(tilt), -np.cos(tilt)])
    return _CategoryStyle(
        view_extent=rng.uniform(0.22, 0.32),
        table_distance=rng.uniform(0.55, 0.85),
        object_height=rng.uniform(0.02, 0.05),
        object_size=rng.uniform(0.26, 0.34),
        power=rng.uniform(2.0, 4.0),
        aspect=rng.uniform(0.6, 1.0),
        dome=rng.uniform(0.1, 0.35),
        hsv=(rng.uniform(0.0, 1.0), rng.uniform(0.3, 0.7), rng.uniform(0.55, 0.8)),
        table_value=rng.uniform(0.15, 0.3),
        texture_cell=rng.uniform(0.002, 0.005),
        texture_amplitude=rng.uniform(0.08, 0.15),
        light=light)


def _rotation(axis_angle: np.ndarray) -> np.ndarray:
    rotation, _ = cv2.Rodrigues(axis_angle.reshape(3, 1))
    return rotation


def hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """RGB (3,) in [0, 1] of an HSV colour; the hue wraps, saturation and value are clipped to [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, np.clip(saturation, 0, 1), np.clip(value, 0, 1)))


def sample_scene(rng: np.random.Generator, style: _CategoryStyle, height: int, width: int,
                 shadow_prob: float, focal: float | None = None) -> Scene:
    """Draw the pose, colours, holes and shadow strip of one sample of a category.

    ``focal`` (pixels) replaces the category's own focal length, e.g. Eyecandies's 711.11 px at 512 px; the object
    keeps its size relative to the image.
    """
    if focal is None:
        focal = max(height, width) * style.table_distance / style.view_extent
    short_extent = min(height, width) * style.table_distance / focal
    tilt = np.deg2rad(rng.uniform(1.0, 6.0))
    tilt_direction = rng.uniform(0.0, 2.0 * np.pi)
    rotation = _rotation(tilt * np.array([np.cos(tilt_direction), np.sin(tilt_direction), 0.0]))
    distance = style.table_distance + rng.uniform(-0.01, 0.01)
    semi_major = style.object_size * short_extent * rng.uniform(0.9, 1.1)
    hue, saturation, value = style.hsv
    shadow = None
    if rng.random() < shadow_prob:
        shadow = _ShadowStrip(side=int(rng.integers(4)), width_fraction=rng.uniform(0.03, 0.08),
                              wave_amplitudes=rng.uniform(0.0, 0.15, size=3), wave_phases=rng.uniform(0, 2 * np.pi, 3))
    return Scene(
        height=height,
        width=width,
        focal=focal,
        plane_origin=np.array([0.0, 0.0, distance]),
        plane_basis=rotation.T,
        object_centre=rng.uniform(-0.1, 0.1, size=2) * short_extent,
        object_axes=np.array([semi_major, semi_major * style.aspect * rng.uniform(0.95, 1.05)]),
        object_angle=rng.uniform(0.0, 2.0 * np.pi),
        object_height=style.object_height * rng.uniform(0.9, 1.1),
        power=style.power,
        dome=style.dome,
        albedo=hsv_to_rgb(hue + rng.uniform(-0.02, 0.02), saturation * rng.uniform(0.9, 1.1),
                           value * rng.uniform(0.92, 1.08)),
        table_albedo=np.full(3, style.table_value) * rng.uniform(0.9, 1.1, size=3),
        texture_cell=style.texture_cell,
        texture_amplitude=style.texture_amplitude,
        light=style.light,
        hole_rate=rng.uniform(0.002, 0.01),
        shadow=shadow,
        noise_seed=int(rng.integers(2**62)))


def rotate_into_frame(s: np.ndarray, t: np.ndarray, centre, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Plane coordinates ``s``, ``t`` in the frame centred at ``centre`` and rotated by ``angle``."""
    cos, sin = np.cos(angle), np.sin(angle)
    ds, dt = s - centre[0], t - centre[1]
    return cos * ds + sin * dt, -sin * ds + cos * dt


def to_object_frame(scene: Scene, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plane coordinates in the object's frame (centred on it, along its axes)."""
    return rotate_into_frame(s, t, scene.object_centre, scene.object_angle)


def intact_object_height(scene: Scene, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Height (m) of the intact object above the table at plane coordinates ``s``, ``t``."""
    x, y = to_object_frame(scene, s, t)
    a, b = scene.object_axes
    radius = (np.abs(x / a) ** scene.power + np.abs(y / b) ** scene.power) ** (1.0 / scene.power)
    rim = np.clip((1.0 - radius) / 0.3, 0.0, 1.0)
    return scene.object_height * rim * rim * (3.0 - 2.0 * rim) * (1.0 - scene.dome * np.minimum(radius, 1.0) ** 2)


def camera_rays(scene: Scene) -> np.ndarray:
    """Rays (H, W, 3) with unit z: a point at depth z on the ray of pixel (v, u) is ``z * rays[v, u]``."""
    rows, cols = np.mgrid[0:scene.height, 0:scene.width].astype(np.float64)
    centre_u, centre_v = (scene.width - 1) / 2.0, (scene.height - 1) / 2.0
    return np.stack([(cols - centre_u) / scene.focal, (rows - centre_v) / scene.focal, np.ones_like(rows)], -1)


def cast_rays(scene: Scene, rays: np.ndarray, height: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Intersect every ray with the height field over the table by bisection on depth.

    Only rays whose segment between the table and twice the object height passes within the object's bounding
    circle are searched; the others hit the table.

    Returns:
        float64 (H, W) depth z of the first surface point along each ray.
    """
    normal = -scene.plane_basis[2]
    along_normal = rays @ normal
    plane_depth = (normal @ scene.plane_origin) / along_normal
    near_depth = plane_depth - 2.0 * scene.object_height / -along_normal
    far_st = np.stack(plane_coordinates(scene, rays * plane_depth[..., None]), -1) - scene.object_centre
    near_st = np.stack(plane_coordinates(scene, rays * near_depth[..., None]), -1) - scene.object_centre
    step = near_st - far_st
    closest = np.clip(-(far_st * step).sum(-1) / np.maximum((step * step).sum(-1), 1e-30), 0.0, 1.0)
    distance = np.linalg.norm(far_st + closest[..., None] * step, axis=-1)
    candidate = distance < np.hypot(*scene.object_axes)
    depth = plane_depth.copy()
    candidate_rays = rays[candidate]
    near, far = near_depth[candidate], plane_depth[candidate]
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (near + far)
        points = candidate_rays * middle[:, None]
        s, t = plane_coordinates(scene, points)
        above_surface = (points - scene.plane_origin) @ normal > height(s, t)
        near = np.where(above_surface, middle, near)
        far = np.where(above_surface, far, middle)
    depth[candidate] = 0.5 * (near + far)
    return depth


def plane_coordinates(scene: Scene, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane coordinates ``s``, ``t`` (metres) of camera-frame points (..., 3)."""
    relative = points - scene.plane_origin
    return relative @ scene.plane_basis[0], relative @ scene.plane_basis[1]


def surface_normals(points: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) of an organised point cloud, facing the camera (negative z)."""
    normals = np.cross(np.gradient(points, axis=0), np.gradient(points, axis=1))
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def shadow_mask(shadow: _ShadowStrip, height: int, width: int) -> np.ndarray:
    """Missing-point band (H, W) along one border with a ragged inner edge, at least 4 pixels wide."""
    along_length, across_length = (height, width) if shadow.side < 2 else (width, height)
    along = np.linspace(0.0, 2.0 * np.pi, along_length)
    orders = np.arange(1, len(shadow.wave_amplitudes) + 1)
    ripple = (shadow.wave_amplitudes[:, None] * np.sin(orders[:, None] * along + shadow.wave_phases[:, None])).sum(0)
    band = np.maximum(shadow.width_fraction * across_length * (1.0 + ripple), 4.0)
    depth_from_border = np.arange(across_length)
    if shadow.side in (1, 3):
        depth_from_border = depth_from_border[::-1]
    mask = depth_from_border[None, :] < band[:, None]
    return mask if shadow.side < 2 else mask.T
