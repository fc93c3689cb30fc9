"""Rendering of one synthetic sample: shading, sensor noise and missing points, ground truth.

The renderer casts one ray per pixel into the height field, shades the surface (Lambertian, from the normals of
the rendered point cloud) over a texture attached to the object and adds sensor noise and missing points: isolated
holes, drop-outs on steep flanks and, in some samples, a sensor-shadow strip along one image border (so two corner
patches there are fully invalid). Each sample draws from its own ``numpy`` stream keyed by seed, category, split,
defect type and index, so one sample can be rendered again alone, with or without its defect.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from .defects import (
    COLOUR_DEFECTS,
    DEFECT_TYPES,
    GEOMETRY_DEFECTS,
    GOOD,
    REGION_IDS,
    Defect,
    blob_radius,
    crack_profile,
    defect_region,
    sample_defects,
    surface_height,
)
from .scene import (
    OBJECT_MIN_HEIGHT_M,
    Scene,
    camera_rays,
    cast_rays,
    category_style,
    intact_object_height,
    name_key,
    plane_coordinates,
    sample_scene,
    shadow_mask,
    surface_normals,
    to_object_frame,
)

SPLITS = ('train', 'validation', 'test')

_TEXTURE_LATTICE = 64
_RGB_NOISE_STD = 2.0 / 255.0
_Z_NOISE_STD_M = 0.0002
_MIN_SIDE = 16


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered sample, as written to disk.

    Attributes:
        rgb: uint8 (H, W, 3) image in RGB order.
        xyz: float32 (H, W, 3) organised point cloud in metres, (0, 0, 0) where a point is missing.
        gt: uint8 (H, W) mask, 0 outside defects, region ids (255, 254, ...) inside.
        object_mask: bool (H, W), pixels that see the object rather than the table.
        depth: float32 (H, W) noisy z in metres of every pixel, without missing points (a rendered depth map).
        normals: float32 (H, W, 3) unit normals of the measured surface, facing away from the camera (a surface
            facing the camera is (0, 0, 1)).
        lightings: uint8 (H, W, 3) RGB images under the requested extra lights (empty unless asked for).
    """

    rgb: np.ndarray
    xyz: np.ndarray
    gt: np.ndarray
    object_mask: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    lightings: tuple[np.ndarray, ...] = ()


def _lattice_noise(lattice: np.ndarray, s: np.ndarray, t: np.ndarray, cell: float) -> np.ndarray:
    """Smooth noise attached to plane coordinates: a random lattice of spacing ``cell`` (m), cubic interpolation."""
    coordinates = np.stack([s / cell, t / cell]) + lattice.shape[0] / 2.0
    return ndimage.map_coordinates(lattice, coordinates, order=3, mode='grid-wrap')


def _shade(scene: Scene, points: np.ndarray, defects: Sequence[Defect], lattices: np.ndarray,
           noise: np.ndarray) -> np.ndarray:
    """RGB in [0, 1], (H, W, 3): textured albedo, stains and crack interiors, Lambertian shading, sensor noise.

    Args:
        scene: The scene.
        points: float64 (H, W, 3) surface seen in the RGB image.
        defects: Defects of the sample (only stains and cracks change the albedo).
        lattices: (3, L, L) random lattices of the object texture, its grain and the table texture.
        noise: (H, W, 3) additive image noise.
    """
    s, t = plane_coordinates(scene, points)
    object_x, object_y = to_object_frame(scene, s, t)
    coverage = np.clip(intact_object_height(scene, s, t) / OBJECT_MIN_HEIGHT_M, 0.0, 1.0)[..., None]
    texture = _lattice_noise(lattices[0], object_x, object_y, scene.texture_cell)
    grain = _lattice_noise(lattices[1], object_x, object_y, scene.texture_cell / 3.0)
    object_albedo = scene.albedo * (1.0 + scene.texture_amplitude * texture + 0.03 * grain)[..., None]
    table_albedo = scene.table_albedo * (1.0 + 0.08 * _lattice_noise(lattices[2], s, t, 0.01))[..., None]
    albedo = coverage * object_albedo + (1.0 - coverage) * table_albedo
    for defect in defects:
        if defect.kind == 'color':
            alpha = np.clip((1.15 - blob_radius(defect, s, t)) / 0.3, 0.0, 1.0)[..., None] * coverage
            stain = defect.colour * (1.0 + 0.5 * scene.texture_amplitude * texture)[..., None]
            albedo = (1.0 - alpha) * albedo + alpha * stain
        elif defect.kind == 'crack':
            albedo = albedo * (1.0 - 0.6 * np.sqrt(crack_profile(defect, s, t)))[..., None]
    shading = 0.35 + 0.65 * np.clip(surface_normals(points) @ scene.light, 0.0, 1.0)
    return np.clip(albedo * shading[..., None] + noise, 0.0, 1.0)


def _annotate(scene: Scene, intact_points: np.ndarray, measured_points: np.ndarray,
              defects: Sequence[Defect]) -> tuple[np.ndarray, np.ndarray]:
    """Return the object mask, bool (H, W), and the ground truth, uint8 (H, W) with one id per defect region."""
    intact_s, intact_t = plane_coordinates(scene, intact_points)
    measured_s, measured_t = plane_coordinates(scene, measured_points)
    object_mask = intact_object_height(scene, intact_s, intact_t) > OBJECT_MIN_HEIGHT_M
    gt = np.zeros(object_mask.shape, np.uint8)
    for region_id, defect in zip(REGION_IDS, defects):
        geometric = defect.kind in GEOMETRY_DEFECTS
        region = defect_region(defect, measured_s if geometric else intact_s, measured_t if geometric else intact_t)
        gt[region & object_mask] = region_id
    return object_mask, gt


def _measure(scene: Scene, rays: np.ndarray, points: np.ndarray, defects: Sequence[Defect], z_noise: np.ndarray,
             dropout: np.ndarray) -> np.ndarray:
    """Sensor output, float32 (H, W, 3): noisy depth along the rays, (0, 0, 0) where no point is measured.

    Points go missing at random (``hole_rate``), with probability 0.6 on flanks steeper than 70 degrees, with
    probability 0.35 in the core of a crack, and everywhere in the shadow strip.
    """
    s, t = plane_coordinates(scene, points)
    crack_core = np.zeros(dropout.shape, bool)
    for defect in defects:
        if defect.kind == 'crack':
            crack_core |= crack_profile(defect, s, t) > 0.5
    facing = np.abs(surface_normals(points)[..., 2])
    missing = (dropout < scene.hole_rate) | ((facing < 0.35) & (dropout < 0.6)) | (crack_core & (dropout < 0.35))
    if scene.shadow is not None:
        missing |= shadow_mask(scene.shadow, scene.height, scene.width)
    xyz = rays * (points[..., 2] + z_noise)[..., None]
    xyz[missing] = 0.0
    return xyz.astype(np.float32)


def _render(scene: Scene, defects: Sequence[Defect], lights: Sequence[np.ndarray] = ()) -> SyntheticSample:
    """Render a scene with the given defects (none for the intact sample), and its rgb under extra ``lights``.

    The noise fields are drawn first, in a fixed order, so a sample and its intact twin share them.
    """
    noise = np.random.default_rng(scene.noise_seed)
    lattices = noise.standard_normal((3, _TEXTURE_LATTICE, _TEXTURE_LATTICE))
    rgb_noise = noise.standard_normal((scene.height, scene.width, 3)) * _RGB_NOISE_STD
    z_noise = noise.standard_normal((scene.height, scene.width)) * _Z_NOISE_STD_M
    dropout = noise.random((scene.height, scene.width))

    rays = camera_rays(scene)
    geometry_defects = [d for d in defects if d.kind in GEOMETRY_DEFECTS]
    shading_defects = [d for d in geometry_defects if d.kind in COLOUR_DEFECTS]
    intact_points = rays * cast_rays(scene, rays, surface_height(scene, ()))[..., None]
    measured_points = (rays * cast_rays(scene, rays, surface_height(scene, geometry_defects))[..., None]
                       if geometry_defects else intact_points)
    shaded_points = (rays * cast_rays(scene, rays, surface_height(scene, shading_defects))[..., None]
                     if shading_defects else intact_points)

    rgb = _shade(scene, shaded_points, defects, lattices, rgb_noise)
    object_mask, gt = _annotate(scene, intact_points, measured_points, defects)
    xyz = _measure(scene, rays, measured_points, defects, z_noise, dropout)
    lightings = tuple(_to_uint8(_shade(replace(scene, light=np.asarray(light, dtype=np.float64)), shaded_points,
                                       defects, lattices, rgb_noise)) for light in lights)
    return SyntheticSample(rgb=_to_uint8(rgb), xyz=xyz, gt=gt, object_mask=object_mask,
                           depth=(measured_points[..., 2] + z_noise).astype(np.float32),
                           normals=(-surface_normals(measured_points)).astype(np.float32), lightings=lightings)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float image -> uint8, rounded."""
    return np.round(image * 255.0).astype(np.uint8)


def check_arguments(category: str, height: int, width: int, defect_types: Iterable[str], seed: int) -> None:
    """Raise on a category that is no plain folder name, a side under 16 px, an unknown defect type or a seed < 0."""
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
                            width: int = 128, seed: int = 0, shadow_prob: float = 0.3, intact: bool = False,
                            focal: float | None = None, lights: Sequence[Sequence[float]] = ()) -> SyntheticSample:
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
        focal: Focal length in pixels instead of the category's own (see :func:`scene.sample_scene`).
        lights: Unit light directions (3,) (towards the scene, z forward) of extra rgb renderings.

    Returns:
        The sample (see :class:`SyntheticSample`).
    """
    check_arguments(category, height, width, [defect_type], seed)
    if split not in SPLITS:
        raise ValueError(f'split must be one of {list(SPLITS)}, got {split!r}')
    key = [seed, name_key(category), name_key(split), name_key(defect_type), index]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    scene = sample_scene(rng, category_style(category), height, width, shadow_prob, focal)
    defects = () if defect_type == GOOD else sample_defects(rng, scene, defect_type)
    return _render(scene, () if intact else defects, lights)
