"""Transforms that turn the xyz point cloud into image modalities, in steps with declared keys.

``FitTablePlane`` runs once per sample (nearest resize, table plane, foreground); the modality steps read its
outputs: ``DepthFromPoints`` (the authors' depth), ``NormalsFromDepth`` (Sobel, the authors' normals),
``NormalsFromPoints`` (cross products of neighbouring 3D points), ``HeightFromPlane`` and ``XYZImageFromPoints``.
A pipeline with depth and normals fits the plane once::

    dict(type='FitTablePlane', size=256),
    dict(type='DepthFromPoints'),
    dict(type='NormalsFromDepth'),

``XYZToDepth`` is the first two steps in one transform (the authors' depth pipeline).
"""
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS

from .point_cloud import (
    depth_to_normals,
    estimate_table_plane,
    fill_depth_holes,
    fill_holes,
    foreground_mask,
    plane_frame,
    point_cloud_normals,
    resize_nearest,
    scale_foreground_depth,
    signed_height,
)


def to_size(size: int | Sequence[int]) -> tuple[int, int]:
    """Normalise a size argument: an int is a square side, a pair is (height, width).

    Args:
        size: Side or (height, width), positive.

    Returns:
        (height, width).
    """
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height <= 0 or width <= 0:
        raise ValueError(f'size must be positive, got {size}')
    return int(height), int(width)


def _require(results: dict, keys: Sequence[str], transform: str, producer: str) -> None:
    """Raise naming the missing keys and the transform that produces them."""
    missing = [key for key in keys if key not in results]
    if missing:
        raise KeyError(f'{transform}: {results.get("xyz_path", "the sample")} has no {missing}; put {producer} before '
                       f'{transform} in the pipeline')


@TRANSFORMS.register_module()
class FitTablePlane(BaseTransform):
    """Resize the point cloud and find the table plane and the object on it: the shared first step.

    Steps 1-2 of the CRD authors' (3DSR) depth preprocessing (see ``crd_method_notes.md``, "Data"):

    1. nearest resize of the xyz array to ``size`` (OpenCV ``INTER_NEAREST`` indices);
    2. table plane through the mean points of the top-left, top-right and bottom-left ``corner_size`` x
       ``corner_size`` patches (sum of xyz / number of valid pixels); foreground = valid points farther than
       ``plane_threshold`` from the plane, then ``MORPH_CLOSE`` with a ``closing_kernel_size`` square for
       ``closing_iterations``.

    Where a corner patch holds no valid point (a sensor shadow along a border) or the corner points are
    collinear, the plane is a RANSAC fit (``ransac_trials`` triples, inlier distance ``plane_threshold``) to the
    valid points of the border band of width ``corner_size``.

    Required Keys:
        - xyz: float (H, W, 3), (0, 0, 0) = missing point.

    Added Keys:
        - points: float32 (S_h, S_w, 3), the resized point cloud, (0, 0, 0) = missing.
        - table_plane: ``(normal float64 (3,), offset float)``, the plane ``normal . p = offset``.
        - foreground: uint8 (S_h, S_w) in {0, 1}, the closed off-plane mask.

    Args:
        size: Output side, or (height, width).
        corner_size: Side of the corner patches (pixels at output size).
        plane_threshold: Minimum distance to the table plane of a foreground point, in metres.
        closing_kernel_size: Side of the square closing kernel.
        closing_iterations: Iterations of the morphological closing.
        ransac_trials: Random triples of the fallback plane fit.
    """

    def __init__(self,
                 size: int | Sequence[int] = 256,
                 corner_size: int = 3,
                 plane_threshold: float = 0.005,
                 closing_kernel_size: int = 3,
                 closing_iterations: int = 3,
                 ransac_trials: int = 200):
        self.size = to_size(size)
        if corner_size < 1 or 2 * corner_size > min(self.size):
            raise ValueError(f'corner_size must be in [1, {min(self.size) // 2}] for size {self.size}, '
                             f'got {corner_size}')
        self.corner_size = corner_size
        self.plane_threshold = plane_threshold
        self.closing_kernel_size = closing_kernel_size
        self.closing_iterations = closing_iterations
        self.ransac_trials = ransac_trials

    def compute(self, xyz: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, float], np.ndarray]:
        """Resized points, table plane and foreground of one point cloud.

        Args:
            xyz: (H, W, 3) organised point cloud.

        Returns:
            ``points`` (S_h, S_w, 3) of the input dtype, ``plane`` and ``foreground`` uint8 (S_h, S_w).
        """
        points = resize_nearest(xyz, self.size)
        if not points[..., 2].any():
            raise ValueError(f'the {xyz.shape[0]}x{xyz.shape[1]} point cloud holds {np.count_nonzero(xyz[..., 2])} '
                             f'valid point(s) (z != 0) and none is left after the nearest resize to {self.size}; '
                             'expected a scan of the object on its table')
        plane, _ = estimate_table_plane(points, self.corner_size, self.plane_threshold, self.ransac_trials)
        foreground = foreground_mask(points, plane, self.plane_threshold, self.closing_kernel_size,
                                     self.closing_iterations)
        return points, plane, foreground

    def transform(self, results: dict) -> dict:
        """Add ``points``, ``table_plane`` and ``foreground``; errors name the xyz file."""
        _require(results, ('xyz',), 'FitTablePlane', 'a loader of the point cloud (LoadXYZFromFile)')
        try:
            points, plane, foreground = self.compute(results['xyz'])
        except ValueError as error:
            raise ValueError(f'{results.get("xyz_path", "xyz")}: {error}') from None
        results['points'] = points.astype(np.float32)
        results['table_plane'] = plane
        results['foreground'] = foreground
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, corner_size={self.corner_size}, '
                f'plane_threshold={self.plane_threshold}, closing_kernel_size={self.closing_kernel_size}, '
                f'closing_iterations={self.closing_iterations}, ransac_trials={self.ransac_trials})')


@TRANSFORMS.register_module()
class DepthFromPoints(BaseTransform):
    """The authors' depth map from the outputs of ``FitTablePlane`` (steps 3-4 of their preprocessing).

    3. z times the foreground, min-max scaled over the valid foreground into ``output_range``, 0 elsewhere (a
       foreground with one z value maps to the middle of the range, where the reference divides by zero);
    4. ``fill_passes`` hole-filling passes (a zero pixel takes the mean of its positive 3x3 neighbours).

    The background is 0: the map steps from 0 to ``output_range[0]`` at the object's border.

    Required Keys:
        - points, foreground (``FitTablePlane``).

    Added Keys:
        - depth: float32 (S_h, S_w), in ``output_range`` on the object, 0 on the background except the rim grown
          by hole filling.

    Args:
        output_range: (low, high), 0 < low < high: where the foreground depth is scaled to.
        fill_passes: Hole-filling passes.
    """

    def __init__(self, output_range: Sequence[float] = (0.1, 0.9), fill_passes: int = 2):
        low, high = output_range
        if not 0 < low < high:
            raise ValueError(f'output_range must satisfy 0 < low < high (0 marks the background), got {output_range}')
        self.output_range = (float(low), float(high))
        self.fill_passes = fill_passes

    def transform(self, results: dict) -> dict:
        """Add ``depth``."""
        _require(results, ('points', 'foreground'), 'DepthFromPoints', 'FitTablePlane')
        depth = scale_foreground_depth(results['points'][..., 2], results['foreground'], self.output_range)
        results['depth'] = fill_depth_holes(depth, self.fill_passes).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(output_range={self.output_range}, fill_passes={self.fill_passes})'


@TRANSFORMS.register_module()
class XYZToDepth(BaseTransform):
    """The authors' depth preprocessing in one step: ``FitTablePlane`` then ``DepthFromPoints``.

    With the defaults it reproduces the reference to float precision. Use the two steps instead when another
    modality (normals, height) also needs the plane, so that it is fitted once.

    Required Keys:
        - xyz: float (H, W, 3), (0, 0, 0) = missing point.

    Added Keys:
        - points, table_plane, foreground (see ``FitTablePlane``).
        - depth: float32 (S_h, S_w) (see ``DepthFromPoints``).

    Args:
        size: Output side, or (height, width).
        output_range: See ``DepthFromPoints``.
        fill_passes: See ``DepthFromPoints``.
        **plane_kwargs: Other arguments of ``FitTablePlane`` (``corner_size``, ``plane_threshold``, ...).
    """

    def __init__(self, size: int | Sequence[int] = 256, output_range: Sequence[float] = (0.1, 0.9),
                 fill_passes: int = 2, **plane_kwargs):
        self.fit_table_plane = FitTablePlane(size, **plane_kwargs)
        self.depth_from_points = DepthFromPoints(output_range, fill_passes)

    def transform(self, results: dict) -> dict:
        """Add ``points``, ``table_plane``, ``foreground`` and ``depth``."""
        return self.depth_from_points.transform(self.fit_table_plane.transform(results))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.fit_table_plane!r}, {self.depth_from_points!r})'


@TRANSFORMS.register_module()
class NormalsFromDepth(BaseTransform):
    """Surface normals of the depth map with Sobel derivatives: the authors' normals (the default).

    n = normalise(-dz/dx, -dz/dy, 1) of the min-max scaled depth at the output size, stored as (n + 1) / 2 and 0
    on the background.

    Required Keys:
        - depth (``DepthFromPoints``), foreground (``FitTablePlane``).

    Added Keys:
        - normals: float32 (S_h, S_w, 3) in [0, 1] on the object, 0 on the background.

    Args:
        sobel_kernel_size: Aperture of the Sobel filters (1, 3, 5 or 7).
    """

    def __init__(self, sobel_kernel_size: int = 5):
        if sobel_kernel_size not in (1, 3, 5, 7):
            raise ValueError(f'sobel_kernel_size must be 1, 3, 5 or 7, got {sobel_kernel_size}')
        self.sobel_kernel_size = sobel_kernel_size

    def transform(self, results: dict) -> dict:
        """Add ``normals``."""
        _require(results, ('depth', 'foreground'), 'NormalsFromDepth', 'FitTablePlane and DepthFromPoints')
        results['normals'] = depth_to_normals(results['depth'], results['foreground'], self.sobel_kernel_size)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(sobel_kernel_size={self.sobel_kernel_size})'


@TRANSFORMS.register_module()
class NormalsFromPoints(BaseTransform):
    """Surface normals of the organised point cloud itself: cross products of neighbouring 3D points.

    n = d/du x d/dv from central differences of valid neighbours (one-sided next to a missing point; see
    :func:`point_cloud_normals`), in the camera frame, stored as (n + 1) / 2 like ``NormalsFromDepth``. Unlike
    the Sobel normals they are metric (the depth map's per-image min-max scaling does not stretch them). Pixels
    without a normal (missing points and their isolated neighbours) take the mean of their defined neighbours for
    ``fill_passes`` passes; the background (outside ``foreground``) is 0.

    Required Keys:
        - points, foreground (``FitTablePlane``).

    Added Keys:
        - normals: float32 (S_h, S_w, 3) in [0, 1] on the object, 0 on the background and unfilled holes.

    Args:
        fill_passes: Hole-filling passes over pixels without a normal.
    """

    def __init__(self, fill_passes: int = 2):
        self.fill_passes = fill_passes

    def transform(self, results: dict) -> dict:
        """Add ``normals``."""
        _require(results, ('points', 'foreground'), 'NormalsFromPoints', 'FitTablePlane')
        normals, defined = point_cloud_normals(results['points'])
        filled, known = fill_holes((normals + 1) / 2, defined, self.fill_passes)
        keep = (known & results['foreground'].astype(bool))[..., None]
        results['normals'] = (filled * keep).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(fill_passes={self.fill_passes})'


@TRANSFORMS.register_module()
class HeightFromPlane(BaseTransform):
    """Height above the fitted table plane, scaled by a fixed range in millimetres.

    ``height = clip((h_mm - low) / (high - low), 0, 1)`` with ``h_mm`` the signed distance to the table plane
    (positive towards the camera). Unlike the reference depth encoding there is no per-image min-max scaling and
    no step at the object border: the table is at 0 and the object rises continuously from it, and a height means
    the same millimetres in every image. Missing points take the mean of their valid neighbours for
    ``fill_passes`` passes, and are 0 (table level) after that.

    Required Keys:
        - points, table_plane (``FitTablePlane``).

    Added Keys:
        - height: float32 (S_h, S_w) in [0, 1].

    Args:
        height_range_mm: (low, high) heights in millimetres mapped to 0 and 1, e.g. (0, 100); low < high.
        fill_passes: Hole-filling passes over missing points.
    """

    def __init__(self, height_range_mm: Sequence[float] = (0.0, 100.0), fill_passes: int = 2):
        low, high = height_range_mm
        if not low < high:
            raise ValueError(f'height_range_mm must satisfy low < high, got {height_range_mm}')
        self.height_range_mm = (float(low), float(high))
        self.fill_passes = fill_passes

    def transform(self, results: dict) -> dict:
        """Add ``height``."""
        _require(results, ('points', 'table_plane'), 'HeightFromPlane', 'FitTablePlane')
        points = results['points']
        low, high = self.height_range_mm
        height_mm = signed_height(points, results['table_plane']) * 1000.0
        scaled = np.clip((height_mm - low) / (high - low), 0.0, 1.0)
        filled, _ = fill_holes(scaled, points[..., 2] != 0, self.fill_passes)
        results['height'] = filled.astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(height_range_mm={self.height_range_mm}, fill_passes={self.fill_passes})'


@TRANSFORMS.register_module()
class XYZImageFromPoints(BaseTransform):
    """The point cloud itself as a 3-channel image: plane removed, centred and scaled per sample.

    Each point is expressed in the table's frame (:func:`plane_frame`: two in-plane axes and the height above the
    plane), centred on the mean of the valid foreground points (the height keeps the table at 0), divided by the
    largest absolute coordinate over the valid foreground points and mapped from [-1, 1] to [0, 1]. Missing
    points are 0.5 (the centre).

    Required Keys:
        - points, table_plane, foreground (``FitTablePlane``).

    Modified Keys:
        - xyz: float32 (S_h, S_w, 3) in [0, 1]; the loaded point cloud is replaced.

    Args:
        min_scale_m: Lower bound of the per-sample scale in metres, for a foreground that is almost a point.
    """

    def __init__(self, min_scale_m: float = 1e-3):
        if min_scale_m <= 0:
            raise ValueError(f'min_scale_m must be positive, got {min_scale_m}')
        self.min_scale_m = min_scale_m

    def transform(self, results: dict) -> dict:
        """Replace ``xyz`` by its image."""
        _require(results, ('points', 'table_plane', 'foreground'), 'XYZImageFromPoints', 'FitTablePlane')
        points = results['points'].astype(np.float64)
        plane = results['table_plane']
        valid = points[..., 2] != 0
        local = points @ plane_frame(plane).T
        local[..., 2] = signed_height(points, plane)
        object_points = valid & results['foreground'].astype(bool)
        reference = object_points if object_points.any() else valid
        centre = local[reference].mean(axis=0)
        centre[2] = 0.0
        local -= centre
        scale = max(float(np.abs(local[reference]).max()), self.min_scale_m)
        image = np.where(valid[..., None], (np.clip(local / scale, -1.0, 1.0) + 1) / 2, 0.5)
        results['xyz'] = image.astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(min_scale_m={self.min_scale_m})'
