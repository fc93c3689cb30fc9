"""Point-cloud export for inspection in 3D viewers (MeshLab, CloudCompare, open3d): .ply, .pcd and .xyz.

The files are encoded here with numpy and written with :func:`mmad.utils.fileio.write_bytes` (atomic; a failed
write raises ``OSError`` naming the file). open3d is not used for writing: it reports success for a .ply or .pcd cut
short by a full disk.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path

import numpy as np

from .fileio import write_bytes

FORMATS = ('.ply', '.pcd', '.xyz')


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


def encode_ply(points: np.ndarray, colours: np.ndarray | None) -> bytes:
    """Binary little-endian PLY: float64 x, y, z and, with colours, uint8 red, green, blue per vertex.

    Args:
        points: (P, 3) float64 points.
        colours: (P, 3) colours in [0, 1], or None.

    Returns:
        The file content.
    """
    fields = [('x', '<f8'), ('y', '<f8'), ('z', '<f8')]
    header = ['ply', 'format binary_little_endian 1.0', f'element vertex {len(points)}',
              'property double x', 'property double y', 'property double z']
    if colours is not None:
        fields += [('red', 'u1'), ('green', 'u1'), ('blue', 'u1')]
        header += ['property uchar red', 'property uchar green', 'property uchar blue']
    vertices = np.empty(len(points), dtype=fields)
    for axis, name in enumerate('xyz'):
        vertices[name] = points[:, axis]
    if colours is not None:
        for channel, name in enumerate(('red', 'green', 'blue')):
            vertices[name] = np.round(colours[:, channel] * 255)
    return '\n'.join([*header, 'end_header', '']).encode('ascii') + vertices.tobytes()


def encode_pcd(points: np.ndarray, colours: np.ndarray | None) -> bytes:
    """Binary PCD v0.7 as open3d and PCL write it: float32 x, y, z and, with colours, ``rgb`` as uint32 0x00RRGGBB.

    Args:
        points: (P, 3) float64 points.
        colours: (P, 3) colours in [0, 1], or None.

    Returns:
        The file content.
    """
    fields = [('x', '<f4'), ('y', '<f4'), ('z', '<f4')]
    if colours is not None:
        fields.append(('rgb', '<u4'))
    header = ['# .PCD v0.7 - Point Cloud Data file format', 'VERSION 0.7',
              'FIELDS ' + ' '.join(name for name, _ in fields),
              'SIZE ' + ' '.join(str(np.dtype(kind).itemsize) for _, kind in fields),
              'TYPE ' + ' '.join('F' if kind.endswith('f4') else 'U' for _, kind in fields),
              'COUNT ' + ' '.join('1' for _ in fields), f'WIDTH {len(points)}', 'HEIGHT 1',
              'VIEWPOINT 0 0 0 1 0 0 0', f'POINTS {len(points)}', 'DATA binary']
    records = np.empty(len(points), dtype=fields)
    for axis, name in enumerate('xyz'):
        records[name] = points[:, axis]
    if colours is not None:
        red, green, blue = np.round(colours * 255).astype(np.uint32).T
        records['rgb'] = (red << 16) | (green << 8) | blue
    return '\n'.join([*header, '']).encode('ascii') + records.tobytes()


def encode_xyz(points: np.ndarray) -> bytes:
    """Plain-text ``x y z`` lines (colours are not part of the format).

    Args:
        points: (P, 3) float64 points.

    Returns:
        The file content.
    """
    return ''.join(f'{x!r} {y!r} {z!r}\n' for x, y, z in points.tolist()).encode('ascii')


def save_point_cloud(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None) -> int:
    """Write the valid points of an organised point cloud (e.g. an MVTec 3D-AD xyz tiff) as .ply, .pcd or .xyz.

    Args:
        path: Output file; the extension (.ply, .pcd, .xyz) chooses the format.
        xyz: (H, W, 3) points in metres, (0, 0, 0) for missing points.
        rgb: Optional (H, W, 3) uint8 colours (not stored in .xyz).

    Returns:
        The number of points written.

    Raises:
        ValueError: The extension is not one of :data:`FORMATS`.
        OSError: The file could not be written (e.g. a full disk); it names ``path``, which keeps its old content.
    """
    extension = osp.splitext(str(path))[1].lower()
    if extension not in FORMATS:
        raise ValueError(f'cannot write the point cloud {path}: unknown extension {extension or "(none)"!r}; '
                         f'expected one of {FORMATS}')
    points, colours = organised_to_points(xyz, rgb)
    if extension == '.ply':
        content = encode_ply(points, colours)
    elif extension == '.pcd':
        content = encode_pcd(points, colours)
    else:
        content = encode_xyz(points)
    write_bytes(path, content)
    return len(points)
