"""Transforms that load the files of a sample: rgb image, point cloud (xyz or depth), normal map, ground-truth mask."""
import warnings

import cv2
import numpy as np
import yaml
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS
from mmad.structures import binarise_mask

from .file_io import read_bytes, read_png, read_tiff

LOADED_SIZES = 'loaded_sizes'
"""Result key of the native (H, W) of every image-like array loaded so far, by result key."""


def check_same_size(results: dict, key: str, shape: tuple[int, ...], path: str) -> None:
    """Check a loaded array against every image-like array loaded before it, whatever its key, then record it.

    Each loader calls this with the native shape of what it read, before any resize, so the check compares files
    with files. The first array loaded also sets ``ori_shape`` when it is absent.

    Args:
        results: The result dict; ``results['loaded_sizes']`` maps each loaded key to its (H, W).
        key: Result key of the new array, e.g. ``'rgb'``, ``'xyz'`` or ``'ir'``.
        shape: Its shape, (H, W, ...).
        path: The file it came from.

    Raises:
        ValueError: Another loaded array has another (H, W); the message names both files.
    """
    size = tuple(int(side) for side in shape[:2])
    loaded = results.setdefault(LOADED_SIZES, {})
    for other_key, other_size in loaded.items():
        if other_key != key and other_size != size:
            raise ValueError(f'{path}: the {key} file is {size[0]}x{size[1]} (HxW) but the {other_key} file '
                             f'{results.get(f"{other_key}_path")} is {other_size[0]}x{other_size[1]}; a sample\'s '
                             'files must have the same size')
    loaded[key] = size
    results.setdefault('ori_shape', size)


@TRANSFORMS.register_module()
class LoadRGBFromFile(BaseTransform):
    """Load the rgb image of a sample.

    Grey and RGBA files are converted to 3 channels, 16-bit files to 8 bits (OpenCV ``IMREAD_COLOR``).

    Required Keys:
        - rgb_path

    Added Keys:
        - rgb: uint8 (H, W, 3), RGB channel order.
        - ori_shape: (H, W).
        - loaded_sizes: ``{'rgb': (H, W), ...}`` (see :func:`check_same_size`).

    Args:
        backend_args: Arguments of the mmengine file backend; None reads the local disk.
    """

    def __init__(self, backend_args: dict | None = None):
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Read ``rgb_path``; raise if another loaded array has another size."""
        path = results['rgb_path']
        rgb = cv2.cvtColor(read_png(path, cv2.IMREAD_COLOR, self.backend_args), cv2.COLOR_BGR2RGB)
        check_same_size(results, 'rgb', rgb.shape, path)
        results['rgb'] = rgb
        results['ori_shape'] = rgb.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'


@TRANSFORMS.register_module()
class LoadXYZFromFile(BaseTransform):
    """Load an organised point cloud (MVTec 3D-AD ``xyz/*.tiff``).

    Points with a NaN or infinite coordinate become missing points (0, 0, 0); the first file holding
    such points triggers one warning per transform instance. The file is never modified.

    Required Keys:
        - xyz_path

    Added Keys:
        - xyz: float32 (H, W, 3) in metres, (0, 0, 0) = missing point.
        - loaded_sizes, ori_shape (when absent): see :func:`check_same_size`.

    Args:
        backend_args: Arguments of the mmengine file backend; None reads the local disk.
    """

    def __init__(self, backend_args: dict | None = None):
        self.backend_args = backend_args
        self._warned_non_finite = False

    def transform(self, results: dict) -> dict:
        """Read ``xyz_path``, check its shape and type, and zero the non-finite points."""
        path = results['xyz_path']
        xyz = read_tiff(path, self.backend_args)
        if xyz.ndim != 3 or xyz.shape[2] != 3:
            raise ValueError(f'{path}: expected an organised point cloud of shape (H, W, 3), got shape {xyz.shape}')
        if not np.issubdtype(xyz.dtype, np.floating):
            raise ValueError(f'{path}: expected float xyz coordinates in metres, got dtype {xyz.dtype}')
        check_same_size(results, 'xyz', xyz.shape, path)
        xyz = xyz.astype(np.float32)
        non_finite = ~np.isfinite(xyz).all(axis=2)
        xyz[non_finite] = 0
        if not xyz[..., 2].any():
            raise ValueError(f'{path}: every point is missing (z = 0, NaN or inf): the point cloud is empty')
        if non_finite.any() and not self._warned_non_finite:
            warnings.warn(f'{path}: {int(non_finite.sum())} points with NaN/inf coordinates were set to (0, 0, 0) '
                          '(missing); further files with such points are not reported', stacklevel=2)
            self._warned_non_finite = True
        results['xyz'] = xyz
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'


@TRANSFORMS.register_module()
class LoadXYZFromDepthFile(BaseTransform):
    """Load a 16-bit depth map with its metric range and back-project it to an organised point cloud (Eyecandies).

    ``z = min + value / 65535 * (max - min)`` with ``normalization: {min, max}`` (metres) read from the yaml file
    beside it (Eyecandies ``NNN_info_depth.yaml``), then the pinhole back-projection into the camera frame:
    ``x = (u - cx) z / f``, ``y = (v - cy) z / f`` with u the column and v the row. Every pixel is a valid point
    (Eyecandies is rendered). ``NNN_pose.txt`` is not needed.

    Required Keys:
        - depth_path: 16-bit single-channel PNG.
        - depth_info_path: yaml file with ``normalization: {min: float, max: float}``.

    Added Keys:
        - xyz: float32 (H, W, 3) in metres, camera frame.
        - loaded_sizes, ori_shape (when absent): see :func:`check_same_size`.

    Args:
        focal_length: Focal length f in pixels at the file's resolution (Eyecandies: 711.11 at 512x512).
        principal_point: (cx, cy) in pixels; None is the image centre ((W - 1) / 2, (H - 1) / 2).
        backend_args: Arguments of the mmengine file backend; None reads the local disk.
    """

    def __init__(self, focal_length: float = 711.11, principal_point: tuple[float, float] | None = None,
                 backend_args: dict | None = None):
        if focal_length <= 0:
            raise ValueError(f'focal_length must be positive (pixels), got {focal_length}')
        self.focal_length = float(focal_length)
        self.principal_point = None if principal_point is None else tuple(float(value) for value in principal_point)
        self.backend_args = backend_args

    def _depth_range(self, path: str) -> tuple[float, float]:
        """``(min, max)`` of ``normalization`` in the yaml file ``path``."""
        try:
            info = yaml.safe_load(read_bytes(path, self.backend_args))
            low, high = (float(info['normalization'][key]) for key in ('min', 'max'))
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f'{path}: expected a yaml file with normalization: {{min: float, max: float}} (metres), '
                             f'could not read it ({type(error).__name__}: {error})') from None
        if not (np.isfinite([low, high]).all() and 0 <= low <= high):
            raise ValueError(f'{path}: normalization must satisfy 0 <= min <= max, got min={low}, max={high}')
        return low, high

    def transform(self, results: dict) -> dict:
        """Read ``depth_path`` and ``depth_info_path`` and add the back-projected ``xyz``."""
        path = results['depth_path']
        encoded = read_png(path, cv2.IMREAD_UNCHANGED, self.backend_args)
        if encoded.ndim != 2 or encoded.dtype != np.uint16:
            raise ValueError(f'{path}: expected a 16-bit single-channel depth map, got shape {encoded.shape} and '
                             f'dtype {encoded.dtype}')
        check_same_size(results, 'depth', encoded.shape, path)
        low, high = self._depth_range(results['depth_info_path'])
        z = low + encoded.astype(np.float64) / np.iinfo(np.uint16).max * (high - low)
        height, width = z.shape
        cx, cy = self.principal_point or ((width - 1) / 2, (height - 1) / 2)
        rows, cols = np.mgrid[0:height, 0:width]
        results['xyz'] = np.stack([(cols - cx) * z / self.focal_length, (rows - cy) * z / self.focal_length, z],
                                  axis=-1).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(focal_length={self.focal_length}, principal_point={self.principal_point}, '
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadNormalsFromFile(BaseTransform):
    """Load a normal map stored as an 8- or 16-bit colour PNG (Eyecandies ``*_normals.png``).

    Required Keys:
        - normals_path

    Added Keys:
        - normals: float32 (H, W, 3) in [0, 1], channels (x, y, z) in the file's RGB order.
        - loaded_sizes, ori_shape (when absent): see :func:`check_same_size`.

    Args:
        backend_args: Arguments of the mmengine file backend; None reads the local disk.
    """

    def __init__(self, backend_args: dict | None = None):
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Read ``normals_path`` and scale it to [0, 1]."""
        path = results['normals_path']
        encoded = read_png(path, cv2.IMREAD_UNCHANGED, self.backend_args)
        if encoded.ndim != 3 or encoded.shape[2] not in (3, 4):
            raise ValueError(f'{path}: expected a 3-channel normal map, got shape {encoded.shape}')
        if encoded.dtype not in (np.uint8, np.uint16):
            raise ValueError(f'{path}: expected an 8- or 16-bit normal map, got dtype {encoded.dtype}')
        check_same_size(results, 'normals', encoded.shape, path)
        scale = np.iinfo(encoded.dtype).max
        results['normals'] = cv2.cvtColor(encoded[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / scale
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'


@TRANSFORMS.register_module()
class LoadMaskFromFile(BaseTransform):
    """Load the ground-truth anomaly mask and binarise it at its native size.

    Binarised by :func:`mmad.structures.binarise_mask` (as ``ADMetric`` does): real masks hold class ids (e.g.
    253-255) on anomalous pixels, every value > 0 in any channel is anomalous. Without a mask file (``gt_path``
    None, a good sample) the mask is all zero, of size ``ori_shape`` (the first array loaded).

    Required Keys:
        - gt_path (str or None)
        - ori_shape (when ``gt_path`` is None)

    Added Keys:
        - gt_mask: uint8 (H, W) in {0, 1}.

    Args:
        backend_args: Arguments of the mmengine file backend; None reads the local disk.
    """

    def __init__(self, backend_args: dict | None = None):
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Read and binarise ``gt_path``, or make an all-zero mask."""
        path = results['gt_path']
        if path is None:
            if 'ori_shape' not in results:
                raise KeyError(f'LoadMaskFromFile: sample {results.get("sample_name")} has no gt mask and no '
                               "'ori_shape'; load a modality first (e.g. LoadRGBFromFile) to size the empty mask")
            results['gt_mask'] = np.zeros(results['ori_shape'], dtype=np.uint8)
            return results
        mask = read_png(path, cv2.IMREAD_UNCHANGED, self.backend_args)
        check_same_size(results, 'gt', mask.shape, path)
        results['gt_mask'] = binarise_mask(mask).astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'
