"""Synthetic data in the exact on-disk layout of MVTec 3D-AD, for tests and demos without the real dataset.

Each sample is a rendered scene: one smooth textured object (a rounded super-ellipse with a slightly domed top) lies
on a slightly tilted table plane, seen from 0.5-0.9 m by a pinhole camera (``x = (u - cx) z / f``,
``y = (v - cy) z / f``). The renderer casts one ray per pixel into the height field, shades the surface
(Lambertian, from the normals of the rendered point cloud) over a texture attached to the object and adds sensor
noise and missing points: isolated holes, drop-outs on steep flanks and, in some samples, a sensor-shadow strip
along one image border (so two corner patches there are fully invalid). Defects lie on the object and are
modality-specific:

- ``color``: a stain of a clearly different hue; the point cloud is left untouched.
- ``dent``: a smooth depression of 2-5 mm; the RGB image is rendered from the intact surface.
- ``crack``: a thin groove of 3-6 mm depth with a dark interior and a few missing points; both modalities change.

Default defect sizes, as fractions of the shorter image side: stain and dent radius 0.03-0.06 (about 0.3-1.1 %
of the image area), crack length 0.10-0.20 and width 0.012-0.02. One in five defective samples holds a second
region of the same type. Ground-truth masks hold the region ids 255, 254, ... (real masks use ids such as
253-255, not only 255) and are all zero for good samples.

Everything is deterministic given ``seed``: each sample draws from its own ``numpy`` stream keyed by seed,
category, split, defect type and index, so one sample can be rendered again alone, with or without its defect
(:func:`render_synthetic_sample`). The look of a category (object shape, colour, camera, light) depends only on its
name.
"""
from __future__ import annotations

import colorsys
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
from rich.progress import track
from scipy import ndimage

DEFECT_TYPES = ('color', 'dent', 'crack')
GOOD = 'good'
SPLITS = ('train', 'validation', 'test')
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

_TEXTURE_LATTICE = 64
_BISECTION_STEPS = 26
_RGB_NOISE_STD = 2.0 / 255.0
_Z_NOISE_STD_M = 0.0002
_MIN_SIDE = 16
# Height above the table (m) from which a pixel counts as object.
_OBJECT_MIN_HEIGHT_M = 0.001


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered sample, as written to disk.

    Attributes:
        rgb: uint8 (H, W, 3) image in RGB order.
        xyz: float32 (H, W, 3) organised point cloud in metres, (0, 0, 0) where a point is missing.
        gt: uint8 (H, W) mask, 0 outside defects, region ids (255, 254, ...) inside.
        object_mask: bool (H, W), pixels that see the object rather than the table.
    """

    rgb: np.ndarray
    xyz: np.ndarray
    gt: np.ndarray
    object_mask: np.ndarray


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
class _Scene:
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


@dataclass(frozen=True)
class _Defect:
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


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode('utf-8'))


def _category_style(category: str) -> _CategoryStyle:
    rng = np.random.default_rng(_name_key(category))
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


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, np.clip(saturation, 0, 1), np.clip(value, 0, 1)))


def _sample_scene(rng: np.random.Generator, style: _CategoryStyle, height: int, width: int,
                  shadow_prob: float) -> _Scene:
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
    return _Scene(
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
        albedo=_hsv_to_rgb(hue + rng.uniform(-0.02, 0.02), saturation * rng.uniform(0.9, 1.1),
                           value * rng.uniform(0.92, 1.08)),
        table_albedo=np.full(3, style.table_value) * rng.uniform(0.9, 1.1, size=3),
        texture_cell=style.texture_cell,
        texture_amplitude=style.texture_amplitude,
        light=style.light,
        hole_rate=rng.uniform(0.002, 0.01),
        shadow=shadow,
        noise_seed=int(rng.integers(2**62)))


def _rotate_into_frame(s: np.ndarray, t: np.ndarray, centre, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Plane coordinates ``s``, ``t`` in the frame centred at ``centre`` and rotated by ``angle``."""
    cos, sin = np.cos(angle), np.sin(angle)
    ds, dt = s - centre[0], t - centre[1]
    return cos * ds + sin * dt, -sin * ds + cos * dt


def _to_object_frame(scene: _Scene, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _rotate_into_frame(s, t, scene.object_centre, scene.object_angle)


def _object_height(scene: _Scene, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Height (m) of the intact object above the table at plane coordinates ``s``, ``t``."""
    x, y = _to_object_frame(scene, s, t)
    a, b = scene.object_axes
    radius = (np.abs(x / a) ** scene.power + np.abs(y / b) ** scene.power) ** (1.0 / scene.power)
    rim = np.clip((1.0 - radius) / 0.3, 0.0, 1.0)
    return scene.object_height * rim * rim * (3.0 - 2.0 * rim) * (1.0 - scene.dome * np.minimum(radius, 1.0) ** 2)


def _irregular_radius(defect: _Defect, angle: np.ndarray) -> np.ndarray:
    orders = np.arange(2, 2 + len(defect.harmonics))
    waves = defect.harmonics[:, 0, None] * np.cos(orders[:, None] * angle.ravel()[None] + defect.harmonics[:, 1, None])
    return defect.radius * (1.0 + waves.sum(0).reshape(angle.shape))


def _defect_frame(defect: _Defect, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _rotate_into_frame(s, t, defect.centre, defect.angle)


def _blob_radius(defect: _Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Distance to the centre divided by the irregular outline radius: < 1 inside the region."""
    x, y = _defect_frame(defect, s, t)
    return np.hypot(x, y) / _irregular_radius(defect, np.arctan2(y, x))


def _crack_profile(defect: _Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """1 on the crack's centre line, falling to 0 at its edge; 0 outside."""
    along, across = _defect_frame(defect, s, t)
    amplitude, phase = defect.harmonics[0]
    centre_line = amplitude * defect.radius * np.sin(np.pi * along / defect.radius + phase)
    half_width = defect.width * np.sqrt(np.clip(1.0 - (along / defect.radius) ** 2, 0.0, 1.0))
    offset = np.abs(across - centre_line)
    inside = offset < half_width
    return np.where(inside, 1.0 - (offset / np.where(inside, half_width, 1.0)) ** 2, 0.0)


def _deformation(defect: _Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Depth (m) by which the defect lowers the surface."""
    if defect.kind == 'dent':
        support = np.clip(1.0 - (_blob_radius(defect, s, t) / 1.35) ** 2, 0.0, 1.0)
        return defect.depth * support**2
    return defect.depth * _crack_profile(defect, s, t)


def _region(defect: _Defect, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Annotated pixels: the stain, the dent where it lowered the surface by > 20 % of its depth, the crack."""
    if defect.kind == 'crack':
        return _crack_profile(defect, s, t) > 0.0
    return _blob_radius(defect, s, t) < 1.0


def _surface_height(scene: _Scene, defects: Sequence[_Defect]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def height(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        intact = _object_height(scene, s, t)
        lowered = intact - sum((_deformation(d, s, t) for d in defects), np.zeros_like(intact))
        return np.clip(lowered, 0.0, None)

    return height


def _camera_rays(scene: _Scene) -> np.ndarray:
    """Rays (H, W, 3) with unit z: a point at depth z on the ray of pixel (v, u) is ``z * rays[v, u]``."""
    rows, cols = np.mgrid[0:scene.height, 0:scene.width].astype(np.float64)
    centre_u, centre_v = (scene.width - 1) / 2.0, (scene.height - 1) / 2.0
    return np.stack([(cols - centre_u) / scene.focal, (rows - centre_v) / scene.focal, np.ones_like(rows)], -1)


def _cast(scene: _Scene, rays: np.ndarray, height: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
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
    far_st = np.stack(_plane_coordinates(scene, rays * plane_depth[..., None]), -1) - scene.object_centre
    near_st = np.stack(_plane_coordinates(scene, rays * near_depth[..., None]), -1) - scene.object_centre
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
        s, t = _plane_coordinates(scene, points)
        above_surface = (points - scene.plane_origin) @ normal > height(s, t)
        near = np.where(above_surface, middle, near)
        far = np.where(above_surface, far, middle)
    depth[candidate] = 0.5 * (near + far)
    return depth


def _plane_coordinates(scene: _Scene, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    relative = points - scene.plane_origin
    return relative @ scene.plane_basis[0], relative @ scene.plane_basis[1]


def _normals(points: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) of an organised point cloud, facing the camera (negative z)."""
    normals = np.cross(np.gradient(points, axis=0), np.gradient(points, axis=1))
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def _lattice_noise(lattice: np.ndarray, s: np.ndarray, t: np.ndarray, cell: float) -> np.ndarray:
    """Smooth noise attached to plane coordinates: a random lattice of spacing ``cell`` (m), cubic interpolation."""
    coordinates = np.stack([s / cell, t / cell]) + lattice.shape[0] / 2.0
    return ndimage.map_coordinates(lattice, coordinates, order=3, mode='grid-wrap')


def _shadow_mask(shadow: _ShadowStrip, height: int, width: int) -> np.ndarray:
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


def _sample_defects(rng: np.random.Generator, scene: _Scene, kind: str) -> tuple[_Defect, ...]:
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
        colour = _hsv_to_rgb(hue + rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.85))
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
        defects.append(_Defect(kind=kind, centre=centre, radius=radius, angle=rng.uniform(0.0, 2.0 * np.pi),
                               width=width, depth=depth, colour=colour, harmonics=harmonics))
    return tuple(defects)


def _shade(scene: _Scene, points: np.ndarray, defects: Sequence[_Defect], lattices: np.ndarray,
           noise: np.ndarray) -> np.ndarray:
    """RGB in [0, 1], (H, W, 3): textured albedo, stains and crack interiors, Lambertian shading, sensor noise.

    Args:
        scene: The scene.
        points: float64 (H, W, 3) surface seen in the RGB image.
        defects: Defects of the sample (only stains and cracks change the albedo).
        lattices: (3, L, L) random lattices of the object texture, its grain and the table texture.
        noise: (H, W, 3) additive image noise.
    """
    s, t = _plane_coordinates(scene, points)
    object_x, object_y = _to_object_frame(scene, s, t)
    coverage = np.clip(_object_height(scene, s, t) / _OBJECT_MIN_HEIGHT_M, 0.0, 1.0)[..., None]
    texture = _lattice_noise(lattices[0], object_x, object_y, scene.texture_cell)
    grain = _lattice_noise(lattices[1], object_x, object_y, scene.texture_cell / 3.0)
    object_albedo = scene.albedo * (1.0 + scene.texture_amplitude * texture + 0.03 * grain)[..., None]
    table_albedo = scene.table_albedo * (1.0 + 0.08 * _lattice_noise(lattices[2], s, t, 0.01))[..., None]
    albedo = coverage * object_albedo + (1.0 - coverage) * table_albedo
    for defect in defects:
        if defect.kind == 'color':
            alpha = np.clip((1.15 - _blob_radius(defect, s, t)) / 0.3, 0.0, 1.0)[..., None] * coverage
            stain = defect.colour * (1.0 + 0.5 * scene.texture_amplitude * texture)[..., None]
            albedo = (1.0 - alpha) * albedo + alpha * stain
        elif defect.kind == 'crack':
            albedo = albedo * (1.0 - 0.6 * np.sqrt(_crack_profile(defect, s, t)))[..., None]
    shading = 0.35 + 0.65 * np.clip(_normals(points) @ scene.light, 0.0, 1.0)
    return np.clip(albedo * shading[..., None] + noise, 0.0, 1.0)


def _annotate(scene: _Scene, intact_points: np.ndarray, measured_points: np.ndarray,
              defects: Sequence[_Defect]) -> tuple[np.ndarray, np.ndarray]:
    """Return the object mask, bool (H, W), and the ground truth, uint8 (H, W) with one id per defect region."""
    intact_s, intact_t = _plane_coordinates(scene, intact_points)
    measured_s, measured_t = _plane_coordinates(scene, measured_points)
    object_mask = _object_height(scene, intact_s, intact_t) > _OBJECT_MIN_HEIGHT_M
    gt = np.zeros(object_mask.shape, np.uint8)
    for region_id, defect in zip(REGION_IDS, defects):
        geometric = defect.kind in GEOMETRY_DEFECTS
        region = _region(defect, measured_s if geometric else intact_s, measured_t if geometric else intact_t)
        gt[region & object_mask] = region_id
    return object_mask, gt


def _measure(scene: _Scene, rays: np.ndarray, points: np.ndarray, defects: Sequence[_Defect], z_noise: np.ndarray,
             dropout: np.ndarray) -> np.ndarray:
    """Sensor output, float32 (H, W, 3): noisy depth along the rays, (0, 0, 0) where no point is measured.

    Points go missing at random (``hole_rate``), with probability 0.6 on flanks steeper than 70 degrees, with
    probability 0.35 in the core of a crack, and everywhere in the shadow strip.
    """
    s, t = _plane_coordinates(scene, points)
    crack_core = np.zeros(dropout.shape, bool)
    for defect in defects:
        if defect.kind == 'crack':
            crack_core |= _crack_profile(defect, s, t) > 0.5
    facing = np.abs(_normals(points)[..., 2])
    missing = (dropout < scene.hole_rate) | ((facing < 0.35) & (dropout < 0.6)) | (crack_core & (dropout < 0.35))
    if scene.shadow is not None:
        missing |= _shadow_mask(scene.shadow, scene.height, scene.width)
    xyz = rays * (points[..., 2] + z_noise)[..., None]
    xyz[missing] = 0.0
    return xyz.astype(np.float32)


def _render(scene: _Scene, defects: Sequence[_Defect]) -> SyntheticSample:
    """Render a scene with the given defects (none for the intact sample).

    The noise fields are drawn first, in a fixed order, so a sample and its intact twin share them.
    """
    noise = np.random.default_rng(scene.noise_seed)
    lattices = noise.standard_normal((3, _TEXTURE_LATTICE, _TEXTURE_LATTICE))
    rgb_noise = noise.standard_normal((scene.height, scene.width, 3)) * _RGB_NOISE_STD
    z_noise = noise.standard_normal((scene.height, scene.width)) * _Z_NOISE_STD_M
    dropout = noise.random((scene.height, scene.width))

    rays = _camera_rays(scene)
    geometry_defects = [d for d in defects if d.kind in GEOMETRY_DEFECTS]
    shading_defects = [d for d in geometry_defects if d.kind in COLOUR_DEFECTS]
    intact_points = rays * _cast(scene, rays, _surface_height(scene, ()))[..., None]
    measured_points = (rays * _cast(scene, rays, _surface_height(scene, geometry_defects))[..., None]
                       if geometry_defects else intact_points)
    shaded_points = (rays * _cast(scene, rays, _surface_height(scene, shading_defects))[..., None]
                     if shading_defects else intact_points)

    rgb = _shade(scene, shaded_points, defects, lattices, rgb_noise)
    object_mask, gt = _annotate(scene, intact_points, measured_points, defects)
    xyz = _measure(scene, rays, measured_points, defects, z_noise, dropout)
    return SyntheticSample(rgb=np.round(rgb * 255.0).astype(np.uint8), xyz=xyz, gt=gt, object_mask=object_mask)


def _check_arguments(category: str, height: int, width: int, defect_types: Iterable[str], seed: int) -> None:
    if not category or Path(category).name != category or category in ('.', '..'):
        raise ValueError(f'category must be a plain directory name, got {category!r}')
    if min(height, width) < _MIN_SIDE:
        raise ValueError(f'height and width must be at least {_MIN_SIDE} pixels, got {height}x{width}')
    unknown = sorted(set(defect_types) - set(DEFECT_TYPES) - {GOOD})
    if unknown:
        raise ValueError(f'unknown defect types {unknown}; expected some of {list(DEFECT_TYPES)}')
    if seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed}')


def render_synthetic_sample(category: str, split: str, defect_type: str, index: int, *, height: int = 128,
                            width: int = 128, seed: int = 0, shadow_prob: float = 0.3,
                            intact: bool = False) -> SyntheticSample:
    """Render one sample, exactly as :func:`make_synthetic_mvtec3d` writes it.

    Args:
        category: Category name; it alone decides the category's look.
        split: ``'train'``, ``'validation'`` or ``'test'``.
        defect_type: ``'good'`` or one of :data:`DEFECT_TYPES`.
        index: Sample index within ``split/defect_type`` (the file stem).
        height: Image height H in pixels.
        width: Image width W in pixels.
        seed: Seed of the whole data set.
        shadow_prob: Probability of a sensor-shadow strip along one border.
        intact: Render the same scene without its defect (same pose, texture, noise and holes).

    Returns:
        The sample: rgb uint8 (H, W, 3), xyz float32 (H, W, 3), gt uint8 (H, W), object_mask bool (H, W).
    """
    _check_arguments(category, height, width, [defect_type], seed)
    if split not in SPLITS:
        raise ValueError(f'split must be one of {list(SPLITS)}, got {split!r}')
    key = [seed, _name_key(category), _name_key(split), _name_key(defect_type), index]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    scene = _sample_scene(rng, _category_style(category), height, width, shadow_prob)
    defects = () if defect_type == GOOD else _sample_defects(rng, scene, defect_type)
    return _render(scene, () if intact else defects)


def _write_sample(sample: SyntheticSample, folder: Path, stem: str, with_gt: bool) -> None:
    rgb_path = folder / 'rgb' / f'{stem}.png'
    if not cv2.imwrite(str(rgb_path), cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write the RGB image {rgb_path}')
    tifffile.imwrite(folder / 'xyz' / f'{stem}.tiff', sample.xyz, photometric='rgb')
    if with_gt:
        gt_path = folder / 'gt' / f'{stem}.png'
        if not cv2.imwrite(str(gt_path), sample.gt):
            raise OSError(f'could not write the mask {gt_path}')


def make_synthetic_mvtec3d(out_dir: str | Path, category: str = 'synthetic', height: int = 128, width: int = 128,
                           num_train: int = 20, num_val: int = 10, num_test_per_defect: int = 10, seed: int = 0,
                           defect_types: Sequence[str] = DEFECT_TYPES, shadow_prob: float = 0.3,
                           show_progress: bool = False) -> Path:
    """Write one synthetic category in the MVTec 3D-AD layout.

    The tree (``NNN`` = 000, 001, ...; ``test/good`` has all-zero masks, as in the real dataset)::

        out_dir/category/
            train/good/{rgb/NNN.png, xyz/NNN.tiff}
            validation/good/{rgb/NNN.png, xyz/NNN.tiff}
            test/{good, color, dent, crack}/{rgb/NNN.png, xyz/NNN.tiff, gt/NNN.png}

    rgb: 8-bit 3-channel PNG; xyz: float32 (H, W, 3) TIFF in metres, (0, 0, 0) for missing points; gt: 8-bit
    single-channel PNG. Default defect sizes are in the module docstring. Existing files are overwritten.

    Args:
        out_dir: Root folder; the category folder is created inside.
        category: Category name (a plain directory name).
        height: Image height H in pixels (at least 16), independent of ``width``.
        width: Image width W in pixels (at least 16).
        num_train: Samples in ``train/good``.
        num_val: Samples in ``validation/good``.
        num_test_per_defect: Samples in ``test/good`` and in each defect folder.
        seed: Seed; the output is a pure function of the arguments.
        defect_types: Defect folders to write, among :data:`DEFECT_TYPES`.
        shadow_prob: Probability that a sample has a sensor-shadow strip along one border.
        show_progress: Show a progress bar.

    Returns:
        The category folder ``out_dir/category``.
    """
    _check_arguments(category, height, width, defect_types, seed)
    root = Path(out_dir) / category
    jobs = [('train', GOOD, i) for i in range(num_train)] + [('validation', GOOD, i) for i in range(num_val)]
    jobs += [('test', kind, i) for kind in dict.fromkeys((GOOD, *defect_types)) for i in range(num_test_per_defect)]
    for split, kind in dict.fromkeys((split, kind) for split, kind, _ in jobs):
        for modality in ('rgb', 'xyz', 'gt') if split == 'test' else ('rgb', 'xyz'):
            (root / split / kind / modality).mkdir(parents=True, exist_ok=True)
    if show_progress:
        jobs = track(jobs, description=f'Rendering {category}')
    for split, kind, index in jobs:
        sample = render_synthetic_sample(category, split, kind, index, height=height, width=width, seed=seed,
                                         shadow_prob=shadow_prob)
        _write_sample(sample, root / split / kind, f'{index:03d}', with_gt=split == 'test')
    return root
