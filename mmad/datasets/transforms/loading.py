"""Transforms that load the files of a sample: rgb image, xyz point cloud, normal map and ground-truth mask."""
import warnings

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS

from .file_io import read_png, read_tiff


def check_same_size(results: dict, shape: tuple[int, ...], path: str, what: str) -> None:
    """Raise when an array loaded from ``path`` does not have the size of the rgb image in ``results``.

    Args:
        results: The result dict; ``ori_shape`` is the rgb size when the rgb image is loaded.
        shape: Shape of the loaded array, (H, W, ...).
        path: The file it came from.
        what: What the file holds, for the message.
    """
    rgb_shape = results.get('ori_shape')
    if rgb_shape is not None and tuple(shape[:2]) != tuple(rgb_shape):
        raise ValueError(f'{path}: the {what} is {shape[0]}x{shape[1]} (HxW) but the rgb image '
                         f'{results.get("rgb_path")} is {rgb_shape[0]}x{rgb_shape[1]}; a sample\'s files must '
                         'have the same size')


@TRANSFORMS.register_module()
class LoadRGBFromFile(BaseTransform):
    """Load the rgb image of a sample.

    Grey and RGBA files are converted to 3 channels, 16-bit files to 8 bits (OpenCV ``IMREAD_COLOR``).

    Required Keys:
        - rgb_path

    Added Keys:
        - rgb: uint8 (H, W, 3), RGB channel order.
        - ori_shape: (H, W).

    Args:
        backend_args: Arguments of the mmengine file backend; None reads the local disk.
    """

    def __init__(self, backend_args: dict | None = None):
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Read ``rgb_path``; raise if another loaded modality has another size."""
        path = results['rgb_path']
        rgb = cv2.cvtColor(read_png(path, cv2.IMREAD_COLOR, self.backend_args), cv2.COLOR_BGR2RGB)
        for key in ('xyz', 'normals'):
            if key in results and results[key].shape[:2] != rgb.shape[:2]:
                other_shape = results[key].shape
                raise ValueError(f'{path}: the rgb image is {rgb.shape[0]}x{rgb.shape[1]} (HxW) but the {key} file '
                                 f'{results.get(f"{key}_path")} is {other_shape[0]}x{other_shape[1]}; a sample\'s '
                                 'files must have the same size')
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
        check_same_size(results, xyz.shape, path, 'point cloud')
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
class LoadNormalsFromFile(BaseTransform):
    """Load a normal map stored as an 8- or 16-bit colour PNG (Eyecandies ``*_normals.png``).

    Required Keys:
        - normals_path

    Added Keys:
        - normals: float32 (H, W, 3) in [0, 1], channels (x, y, z) in the file's RGB order.

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
        check_same_size(results, encoded.shape, path, 'normal map')
        scale = np.iinfo(encoded.dtype).max
        results['normals'] = cv2.cvtColor(encoded[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / scale
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'


@TRANSFORMS.register_module()
class LoadMaskFromFile(BaseTransform):
    """Load the ground-truth anomaly mask and binarise it at its native size.

    Real masks hold class ids (e.g. 253-255) on anomalous pixels: every value > 0 is anomalous. A
    colour mask is anomalous where any channel is > 0. Without a mask file (``gt_path`` None, a good
    sample) the mask is all zero, of the rgb size.

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
                raise KeyError(f'LoadMaskFromFile: sample {results.get("rgb_path")} has no gt mask and no '
                               "'ori_shape'; load the rgb image first (LoadRGBFromFile) to size the empty mask")
            results['gt_mask'] = np.zeros(results['ori_shape'], dtype=np.uint8)
            return results
        mask = read_png(path, cv2.IMREAD_UNCHANGED, self.backend_args)
        if mask.ndim == 3:
            mask = mask.max(axis=2)
        check_same_size(results, mask.shape, path, 'gt mask')
        results['gt_mask'] = (mask > 0).astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'
