"""Point-cloud export for inspection in 3D viewers (open3d, imported only here and only when called)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _import_open3d():
    try:
        import open3d
    except ImportError as err:
        hint = (' Install the system library it needs: apt-get install libusb-1.0-0.'
                if 'libusb' in str(err) else ' Install it with: pip install open3d.')
        raise ImportError(f'Writing point clouds needs open3d ({err}).{hint}') from err
    return open3d


def organised_to_points(xyz: np.ndarray, rgb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Drop the missing points of an organised point cloud.

    Args:
        xyz: (H, W, 3) points in metres; (0, 0, 0) or non-finite marks a missing point.
        rgb: Optional (H, W, 3) uint8 colours of the same pixels.

    Returns:
        ``(points, colours)``: (P, 3) float64 valid points and their (P, 3) colours in [0, 1] (or None).
    """
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f'expected an organised point cloud of shape (H, W, 3), got {xyz.shape}')
    if rgb is not None and rgb.shape[:2] != xyz.shape[:2]:
        raise ValueError(f'rgb of shape {rgb.shape} does not match xyz of shape {xyz.shape}')
    valid = np.isfinite(xyz).all(axis=2) & np.any(xyz != 0, axis=2)
    colours = None if rgb is None else rgb[valid].astype(np.float64) / 255.0
    return xyz[valid].astype(np.float64), colours


def save_point_cloud(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None) -> int:
    """Write the valid points of an organised point cloud (e.g. an MVTec 3D-AD xyz tiff) as .ply or .pcd.

    Args:
        path: Output file; the extension (.ply, .pcd, .xyz) chooses the format.
        xyz: (H, W, 3) points in metres, (0, 0, 0) for missing points.
        rgb: Optional (H, W, 3) uint8 colours.

    Returns:
        The number of points written.
    """
    open3d = _import_open3d()
    points, colours = organised_to_points(xyz, rgb)
    cloud = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(points))
    if colours is not None:
        cloud.colors = open3d.utility.Vector3dVector(colours)
    if not open3d.io.write_point_cloud(str(path), cloud):
        raise OSError(f'open3d could not write the point cloud to {path}')
    return len(points)
