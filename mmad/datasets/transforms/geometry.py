"""Transforms that turn the xyz point cloud into image modalities: depth map and surface normals."""
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS

from .point_cloud import (
    depth_to_normals,
    estimate_table_plane,
    fill_depth_holes,
    foreground_mask,
    resize_nearest,
    scale_foreground_depth,
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


@TRANSFORMS.register_module()
class XYZToDepth(BaseTransform):
    """Depth map of the object from an organised point cloud: the CRD authors' (3DSR) preprocessing.

    Steps, with the reference's details (see ``crd_method_notes.md``, "Data"):

    1. nearest resize of the xyz array to ``size`` (OpenCV ``INTER_NEAREST`` indices), take z;
    2. table plane through the mean points of the top-left, top-right and bottom-left
       ``corner_size`` x ``corner_size`` patches (sum of xyz / number of valid pixels);
       foreground = valid points farther than ``plane_threshold`` from the plane, then
       ``MORPH_CLOSE`` with a ``closing_kernel_size`` square for ``closing_iterations``;
    3. z times the mask, min-max scaled over the valid foreground into ``output_range``, 0 elsewhere;
    4. ``fill_passes`` hole-filling passes (a zero pixel takes the mean of its positive 3x3 neighbours).

    With the defaults it reproduces the reference to float precision. Unlike the reference it does not
    lose the foreground when a corner patch holds no valid point (a sensor shadow along a border): the
    plane is then a RANSAC fit (``ransac_trials`` triples, inlier distance ``plane_threshold``) to the
    valid points of the border band of width ``corner_size``. A foreground with one z value maps to the
    middle of ``output_range`` (the reference divides by zero there).

    Required Keys:
        - xyz: float (H, W, 3), (0, 0, 0) = missing point.

    Added Keys:
        - depth: float32 (S_h, S_w), in ``output_range`` on the object, 0 on the background except the
          rim grown by hole filling.
        - foreground: uint8 (S_h, S_w) in {0, 1}, the closed plane mask.

    Args:
        size: Output side, or (height, width).
        corner_size: Side of the corner patches (pixels at output size).
        plane_threshold: Minimum distance to the table plane of a foreground point, in metres.
        closing_kernel_size: Side of the square closing kernel.
        closing_iterations: Iterations of the morphological closing.
        output_range: (low, high), 0 < low < high: where the foreground depth is scaled to.
        fill_passes: Hole-filling passes.
        ransac_trials: Random triples of the fallback plane fit.
    """

    def __init__(self,
                 size: int | Sequence[int] = 256,
                 corner_size: int = 3,
                 plane_threshold: float = 0.005,
                 closing_kernel_size: int = 3,
                 closing_iterations: int = 3,
                 output_range: Sequence[float] = (0.1, 0.9),
                 fill_passes: int = 2,
                 ransac_trials: int = 200):
        self.size = to_size(size)
        low, high = output_range
        if not 0 < low < high:
            raise ValueError(f'output_range must satisfy 0 < low < high (0 marks the background), got {output_range}')
        if corner_size < 1 or 2 * corner_size > min(self.size):
            raise ValueError(f'corner_size must be in [1, {min(self.size) // 2}] for size {self.size}, '
                             f'got {corner_size}')
        self.corner_size = corner_size
        self.plane_threshold = plane_threshold
        self.closing_kernel_size = closing_kernel_size
        self.closing_iterations = closing_iterations
        self.output_range = (float(low), float(high))
        self.fill_passes = fill_passes
        self.ransac_trials = ransac_trials

    def compute(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth map and foreground of one point cloud.

        Args:
            xyz: (H, W, 3) organised point cloud.

        Returns:
            ``depth`` float64 (S_h, S_w) and ``foreground`` uint8 (S_h, S_w).
        """
        resized = resize_nearest(xyz, self.size)
        if not resized[..., 2].any():
            raise ValueError(f'the {xyz.shape[0]}x{xyz.shape[1]} point cloud holds {np.count_nonzero(xyz[..., 2])} '
                             f'valid point(s) (z != 0) and none is left after the nearest resize to {self.size}; '
                             'expected a scan of the object on its table')
        plane, _ = estimate_table_plane(resized, self.corner_size, self.plane_threshold, self.ransac_trials)
        foreground = foreground_mask(resized, plane, self.plane_threshold, self.closing_kernel_size,
                                     self.closing_iterations)
        depth = scale_foreground_depth(resized[..., 2], foreground, self.output_range)
        return fill_depth_holes(depth, self.fill_passes), foreground

    def _compute_with_path(self, results: dict) -> tuple[np.ndarray, np.ndarray]:
        """``compute`` on ``results['xyz']``, naming the xyz file in any error."""
        try:
            return self.compute(results['xyz'])
        except ValueError as error:
            raise ValueError(f'{results.get("xyz_path", "xyz")}: {error}') from None

    def transform(self, results: dict) -> dict:
        """Add ``depth`` and ``foreground``."""
        depth, foreground = self._compute_with_path(results)
        results['depth'] = depth.astype(np.float32)
        results['foreground'] = foreground
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, corner_size={self.corner_size}, '
                f'plane_threshold={self.plane_threshold}, closing_kernel_size={self.closing_kernel_size}, '
                f'closing_iterations={self.closing_iterations}, output_range={self.output_range}, '
                f'fill_passes={self.fill_passes}, ransac_trials={self.ransac_trials})')


@TRANSFORMS.register_module()
class XYZToNormals(XYZToDepth):
    """Surface normals from an organised point cloud, an alternative to the depth modality.

    The depth map of ``XYZToDepth`` (same arguments) is differentiated with Sobel filters:
    n = normalise(-dz/dx, -dz/dy, 1), stored as (n + 1) / 2, and 0 on the background. The gradients
    are those of the min-max scaled depth at the output size.

    Required Keys:
        - xyz: float (H, W, 3), (0, 0, 0) = missing point.

    Added Keys:
        - normals: float32 (S_h, S_w, 3) in [0, 1] on the object, 0 on the background.
        - foreground: uint8 (S_h, S_w) in {0, 1}.

    Args:
        sobel_kernel_size: Aperture of the Sobel filters (1, 3, 5 or 7).
        **depth_kwargs: Arguments of ``XYZToDepth``.
    """

    def __init__(self, sobel_kernel_size: int = 5, **depth_kwargs):
        if sobel_kernel_size not in (1, 3, 5, 7):
            raise ValueError(f'sobel_kernel_size must be 1, 3, 5 or 7, got {sobel_kernel_size}')
        super().__init__(**depth_kwargs)
        self.sobel_kernel_size = sobel_kernel_size

    def transform(self, results: dict) -> dict:
        """Add ``normals`` and ``foreground``."""
        depth, foreground = self._compute_with_path(results)
        results['normals'] = depth_to_normals(depth, foreground, self.sobel_kernel_size)
        results['foreground'] = foreground
        return results

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, sobel_kernel_size={self.sobel_kernel_size})'
