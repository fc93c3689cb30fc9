"""Geometry of organised point clouds: the reference xyz -> depth pipeline and xyz-derived normals.

The functions work on numpy arrays and know nothing of files; the transforms in ``geometry.py`` wrap
them. An organised point cloud is a float (H, W, 3) array in metres where (0, 0, 0) marks a missing
point; a point is missing when its z is 0.

The depth pipeline is the one of the CRD authors' code (taken from 3DSR), see
``crd_method_notes.md``: nearest resize, table plane through three corner patches, foreground =
points farther than a threshold from the plane, morphological closing, per-image min-max scaling of
the foreground z and two hole-filling passes. Where that reference fails (a corner patch without any
valid point, or three collinear corner points) ``estimate_table_plane`` falls back to a RANSAC plane
fit over the valid points of the image border.
"""
import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Plane = tuple[np.ndarray, float]
"""A plane ``normal . p = offset`` as (normal (3,), offset); the normal need not be unit length."""

MIN_SINE = 1e-6
"""Three points with sin(angle at the first point) below this are taken as collinear (no plane)."""


def _sines(first_edges: np.ndarray, second_edges: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Sine of the angle between edge pairs, from their cross products ``normals``; 0 for a zero-length edge."""
    lengths = np.linalg.norm(first_edges, axis=-1) * np.linalg.norm(second_edges, axis=-1)
    return np.divide(np.linalg.norm(normals, axis=-1), lengths, out=np.zeros_like(lengths), where=lengths > 0)


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize with OpenCV's ``INTER_NEAREST`` index convention.

    The source index of destination index ``i`` is ``floor(i * source_size / destination_size)``,
    computed in integers so that it is exact.

    Args:
        image: (H, W) or (H, W, C) array.
        size: Output (height, width).

    Returns:
        Array of shape (height, width) or (height, width, C), same dtype.
    """
    in_height, in_width = image.shape[:2]
    out_height, out_width = size
    rows = np.arange(out_height) * in_height // out_height
    cols = np.arange(out_width) * in_width // out_width
    return image[rows[:, None], cols[None, :]]


def corner_points(xyz: np.ndarray, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean point of the top-left, top-right and bottom-left corner patches, as the reference computes it.

    Each point is the sum of the patch's xyz divided by the number of its valid (z != 0) pixels;
    missing points are (0, 0, 0), so they add nothing to the sum.

    Args:
        xyz: (H, W, 3) organised point cloud.
        patch_size: Side of the square corner patches, in pixels.

    Returns:
        ``points`` (3, 3) float64, rows p1 (top-left), p2 (top-right), p3 (bottom-left), NaN for a patch
        without any valid point; ``valid_counts`` (3,) int, the valid pixels of each patch.
    """
    patches = (xyz[:patch_size, :patch_size], xyz[:patch_size, -patch_size:], xyz[-patch_size:, :patch_size])
    sums = np.stack([patch.reshape(-1, 3).sum(axis=0, dtype=np.float64) for patch in patches])
    valid_counts = np.array([np.count_nonzero(patch[..., 2]) for patch in patches])
    with np.errstate(divide='ignore', invalid='ignore'):
        points = np.where(valid_counts[:, None] > 0, sums / valid_counts[:, None], np.nan)
    return points, valid_counts


def plane_through_points(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> Plane:
    """Plane through three points with the reference's orientation: normal = (p3 - p1) x (p2 - p1).

    Args:
        p1: (3,) first point (top-left corner).
        p2: (3,) second point (top-right corner).
        p3: (3,) third point (bottom-left corner).

    Returns:
        (normal (3,), offset) with ``offset = normal . p3``.
    """
    normal = np.cross(p3 - p1, p2 - p1)
    return normal, float(normal @ p3)


def border_points(xyz: np.ndarray, width: int) -> np.ndarray:
    """Valid points of the image border band.

    Args:
        xyz: (H, W, 3) organised point cloud.
        width: Width of the band along each of the four borders, in pixels.

    Returns:
        (N, 3) float64 array of the valid (z != 0) points of the band.
    """
    band = np.zeros(xyz.shape[:2], dtype=bool)
    band[:width], band[-width:], band[:, :width], band[:, -width:] = True, True, True, True
    band &= xyz[..., 2] != 0
    return xyz[band].astype(np.float64)


def fit_plane_ransac(points: np.ndarray, inlier_threshold: float, num_trials: int, seed: int = 0) -> Plane:
    """Robust plane fit: RANSAC over random point triples, then least squares on the best inliers.

    All trials are evaluated at once (vectorised). The random generator is seeded, so the fit is
    deterministic.

    Args:
        points: (N, 3) points, N >= 3.
        inlier_threshold: A point is an inlier of a plane when its distance is at most this.
        num_trials: Number of random triples tried.
        seed: Seed of the triple sampling.

    Returns:
        (unit normal (3,), offset).

    Raises:
        ValueError: Fewer than 3 points, or every point on one line.
    """
    if len(points) < 3:
        raise ValueError(f'a plane needs at least 3 valid points, got {len(points)}')
    rng = np.random.default_rng(seed)
    triples = points[rng.integers(0, len(points), size=(num_trials, 3))]
    first_edges, second_edges = triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0]
    normals = np.cross(first_edges, second_edges)
    proper = _sines(first_edges, second_edges, normals) > MIN_SINE
    if not proper.any():
        raise ValueError('the valid points lie on one line: no plane can be fitted')
    normals = normals[proper] / np.linalg.norm(normals[proper], axis=1, keepdims=True)
    offsets = np.einsum('tc,tc->t', normals, triples[proper, 0])
    inlier_counts = (np.abs(points @ normals.T - offsets) <= inlier_threshold).sum(axis=0)
    best = int(np.argmax(inlier_counts))
    inliers = points[np.abs(points @ normals[best] - offsets[best]) <= inlier_threshold]
    centroid = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centroid, full_matrices=False)[2][-1]
    return normal, float(normal @ centroid)


def estimate_table_plane(xyz: np.ndarray, patch_size: int, inlier_threshold: float,
                         num_trials: int) -> tuple[Plane, bool]:
    """Background (table) plane: the reference's three-corner plane, or a robust fit where it fails.

    The reference plane goes through the mean points of the top-left, top-right and bottom-left
    corner patches. When a patch holds no valid point, or the three points are collinear (sine of
    their angle below ``MIN_SINE``), the reference has no plane; then a RANSAC plane is fitted to the
    valid points of the border band of width ``patch_size``.

    Args:
        xyz: (H, W, 3) organised point cloud.
        patch_size: Side of the corner patches and width of the fallback border band.
        inlier_threshold: Inlier distance of the fallback fit (metres).
        num_trials: RANSAC trials of the fallback fit.

    Returns:
        ``(plane, used_fallback)``.

    Raises:
        ValueError: Neither plane exists: the message says how many valid points the point cloud, its border band
            and its corner patches hold.
    """
    points, valid_counts = corner_points(xyz, patch_size)
    if (valid_counts > 0).all():
        normal, offset = plane_through_points(*points)
        if _sines(points[2] - points[0], points[1] - points[0], normal) > MIN_SINE:
            return (normal, offset), False
    band = border_points(xyz, patch_size)
    if len(band) < 3:
        height, width = xyz.shape[:2]
        raise ValueError(
            f'no table plane can be fitted: the {height}x{width} point cloud holds {np.count_nonzero(xyz[..., 2])} '
            f'valid point(s) (z != 0), {len(band)} of them in its {patch_size}-pixel border band and '
            f'{valid_counts.tolist()} in the top-left, top-right and bottom-left corner patches; expected the table '
            f'around the object: 3 valid points or more in the border band')
    return fit_plane_ransac(band, inlier_threshold, num_trials), True


def plane_distance(xyz: np.ndarray, plane: Plane) -> np.ndarray:
    """Absolute point-plane distance.

    Args:
        xyz: (H, W, 3) points.
        plane: (normal, offset).

    Returns:
        (H, W) float64 distances.
    """
    normal, offset = plane
    return np.abs(xyz.astype(np.float64) @ normal - offset) / np.linalg.norm(normal)


def foreground_mask(xyz: np.ndarray, plane: Plane, threshold: float, kernel_size: int,
                    iterations: int) -> np.ndarray:
    """Points off the table plane, without missing points, then morphologically closed.

    Args:
        xyz: (H, W, 3) organised point cloud.
        plane: The table plane.
        threshold: Minimum distance to the plane of a foreground point (metres).
        kernel_size: Side of the square closing kernel.
        iterations: Closing iterations (OpenCV ``MORPH_CLOSE``, default border).

    Returns:
        (H, W) uint8 mask in {0, 1}.
    """
    off_plane = (plane_distance(xyz, plane) > threshold) & (xyz[..., 2] != 0)
    kernel = np.ones((kernel_size, kernel_size), dtype=np.uint8)
    return cv2.morphologyEx(off_plane.astype(np.uint8), cv2.MORPH_CLOSE, kernel, iterations=iterations)


def scale_foreground_depth(z: np.ndarray, foreground: np.ndarray, output_range: tuple[float, float]) -> np.ndarray:
    """Per-image min-max scaling of the foreground z into ``output_range``; everything else 0.

    As in the reference: z is multiplied by the mask, the minimum is taken over the non-zero values
    and the maximum over all values. A foreground with a single z value maps to the middle of the range.

    Args:
        z: (H, W) depth in metres, 0 where missing.
        foreground: (H, W) mask in {0, 1}.
        output_range: (low, high), 0 < low < high.

    Returns:
        (H, W) float64 map, in [low, high] on valid foreground pixels and 0 elsewhere.
    """
    masked = z.astype(np.float64) * foreground
    valid = masked != 0
    if not valid.any():
        return np.zeros_like(masked)
    low, high = output_range
    minimum, maximum = masked[valid].min(), masked.max()
    span = maximum - minimum
    unit = (masked - minimum) / span if span > 0 else np.full_like(masked, 0.5)
    return (unit * (high - low) + low) * valid


def fill_depth_holes(depth: np.ndarray, passes: int) -> np.ndarray:
    """Fill zero pixels with the mean of their strictly positive 3x3 neighbours, ``passes`` times.

    Zero padding at the border; each pass changes only the pixels that were zero before it; a zero
    pixel without a positive neighbour stays zero.

    Args:
        depth: (H, W) map, 0 = hole.
        passes: Number of filling passes.

    Returns:
        (H, W) float64 filled map.
    """
    filled = depth.astype(np.float64)
    for _ in range(passes):
        windows = sliding_window_view(np.pad(filled, 1), (3, 3))
        totals = windows.sum(axis=(-2, -1))
        counts = (windows > 0).sum(axis=(-2, -1))
        means = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
        filled = np.where(filled == 0, means, filled)
    return filled


def depth_to_normals(depth: np.ndarray, foreground: np.ndarray, sobel_kernel_size: int) -> np.ndarray:
    """Surface normals of a depth map: Sobel dz/dx, dz/dy -> normalise(-dz/dx, -dz/dy, 1) -> (n + 1) / 2.

    Args:
        depth: (H, W) depth map.
        foreground: (H, W) mask in {0, 1}; background normals are 0.
        sobel_kernel_size: Aperture of ``cv2.Sobel`` (1, 3, 5 or 7).

    Returns:
        (H, W, 3) float32 map in [0, 1] on the foreground, 0 on the background.
    """
    depth = depth.astype(np.float64)
    dz_dx = cv2.Sobel(depth, cv2.CV_64F, 1, 0, ksize=sobel_kernel_size)
    dz_dy = cv2.Sobel(depth, cv2.CV_64F, 0, 1, ksize=sobel_kernel_size)
    normals = np.stack([-dz_dx, -dz_dy, np.ones_like(depth)], axis=-1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return ((normals + 1) / 2 * foreground[..., None]).astype(np.float32)


def signed_height(xyz: np.ndarray, plane: Plane) -> np.ndarray:
    """Signed distance to the plane, positive on the camera's side (the camera is at the origin).

    Args:
        xyz: (H, W, 3) points in metres.
        plane: (normal, offset); the normal's orientation does not matter.

    Returns:
        (H, W) float64 heights in metres (missing points give meaningless values: mask them).
    """
    normal, offset = plane
    norm = np.linalg.norm(normal)
    camera_side = 1.0 if -offset >= 0 else -1.0
    return camera_side * (xyz.astype(np.float64) @ normal - offset) / norm


def fill_holes(image: np.ndarray, valid: np.ndarray, passes: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill invalid pixels with the mean of their valid 3x3 neighbours, ``passes`` times.

    Unlike :func:`fill_depth_holes` validity is a mask, so a valid value may be 0 or negative.

    Args:
        image: (H, W) or (H, W, C) values.
        valid: (H, W) bool, pixels whose value is known.
        passes: Number of passes; each fills the invalid pixels with at least one valid neighbour.

    Returns:
        ``(filled, valid)``: float64 image of the input's shape (invalid pixels 0) and the grown validity mask.
    """
    channels = image[..., None] if image.ndim == 2 else image
    filled = np.where(valid[..., None], channels.astype(np.float64), 0.0)
    valid = valid.copy()
    for _ in range(passes):
        weights = sliding_window_view(np.pad(valid.astype(np.float64), 1), (3, 3)).sum(axis=(-2, -1))
        padded = np.pad(filled, ((1, 1), (1, 1), (0, 0)))
        totals = sliding_window_view(padded, (3, 3), axis=(0, 1)).sum(axis=(-2, -1))
        grow = ~valid & (weights > 0)
        filled[grow] = totals[grow] / weights[grow, None]
        valid |= grow
    return (filled[..., 0] if image.ndim == 2 else filled), valid


def _neighbour_difference(points: np.ndarray, valid: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Derivative of an organised point cloud along image ``axis`` from valid neighbours only.

    Central difference where both neighbours are valid, else the one-sided difference with the valid one (the
    pixel itself being valid); no derivative where the pixel or both neighbours are missing.
    """
    pad = [(0, 0)] * 3
    pad[axis] = (1, 1)
    padded = np.pad(points, pad)
    padded_valid = np.pad(valid, pad[:2])
    length = points.shape[axis]
    after = np.take(padded, np.arange(2, length + 2), axis=axis)
    before = np.take(padded, np.arange(0, length), axis=axis)
    after_ok = valid & np.take(padded_valid, np.arange(2, length + 2), axis=axis)
    before_ok = valid & np.take(padded_valid, np.arange(0, length), axis=axis)
    central = (after - before) / 2
    derivative = np.where((after_ok & before_ok)[..., None], central,
                          np.where(after_ok[..., None], after - points, points - before))
    return derivative, after_ok | before_ok


def point_cloud_normals(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals of an organised point cloud: cross product of its derivatives along image columns and rows.

    ``n = d/du x d/dv`` (u along columns, v along rows), which for the camera frame (x right, y down, z forward)
    points away from the camera on a surface facing it: a fronto-parallel surface gives (0, 0, 1), as
    :func:`depth_to_normals` does. Missing points (z = 0) take no part in the derivatives.

    Args:
        points: (H, W, 3) organised point cloud in metres, (0, 0, 0) = missing.

    Returns:
        ``normals`` float64 (H, W, 3), unit length where defined and 0 elsewhere; ``defined`` bool (H, W): the
        point is valid and has a valid neighbour along both axes, with non-parallel derivatives.
    """
    points = points.astype(np.float64)
    valid = points[..., 2] != 0
    along_columns, columns_ok = _neighbour_difference(points, valid, axis=1)
    along_rows, rows_ok = _neighbour_difference(points, valid, axis=0)
    normals = np.cross(along_columns, along_rows)
    lengths = np.linalg.norm(normals, axis=-1)
    defined = columns_ok & rows_ok & (lengths > 0)
    normals = np.divide(normals, lengths[..., None], out=np.zeros_like(normals), where=defined[..., None])
    return normals, defined


def plane_frame(plane: Plane) -> np.ndarray:
    """Orthonormal frame of a plane: rows e1, e2 in the plane and e3 its unit normal towards the camera.

    e1 is the camera x axis projected onto the plane (the y axis for a plane containing it), e2 = e3 x e1.

    Args:
        plane: (normal, offset).

    Returns:
        (3, 3) float64 rotation whose rows are e1, e2, e3.
    """
    normal, offset = plane
    e3 = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    if offset > 0:
        e3 = -e3
    axis = np.array([1.0, 0.0, 0.0]) if abs(e3[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = axis - (axis @ e3) * e3
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(e3, e1), e3])
