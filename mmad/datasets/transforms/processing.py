"""Transforms that resize image modalities (rgb, normal maps) and the ground-truth mask to the model size.

Both resize as the CRD authors' code does: PIL's bilinear filter, which antialiases when it shrinks (its support
grows with the scale factor), i.e. torchvision's ``Resize`` applied to a PIL image. OpenCV's ``INTER_LINEAR``
samples 2x2 neighbours only and aliases fine textures when shrinking 800 -> 256.
"""
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmad.registry import TRANSFORMS

from .geometry import to_size


def resize_bilinear_antialiased(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize each channel with PIL's antialiased bilinear filter.

    uint8 channels are resized as 8-bit PIL images (mode ``L``), exactly as PIL resizes an RGB image, rounding
    included; other dtypes as 32-bit float images (mode ``F``), without rounding. Shrinking averages over a
    support that grows with the scale factor (antialiasing), as ``torchvision.transforms.Resize`` on a PIL image.

    Args:
        image: (H, W) or (H, W, C) array, uint8 or float.
        size: (height, width) of the output.

    Returns:
        float32 array (height, width) or (height, width, C), in the input's value range.
    """
    height, width = size
    channels = image[..., None] if image.ndim == 2 else image
    if channels.dtype != np.uint8:
        channels = channels.astype(np.float32)
    resized = np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., index])).resize(
            (width, height), Image.Resampling.BILINEAR), dtype=np.float32)
        for index in range(channels.shape[2])
    ], axis=2)
    return resized[..., 0] if image.ndim == 2 else resized


@TRANSFORMS.register_module()
class ResizeImage(BaseTransform):
    """Antialiased bilinear resize of image-like modalities (rgb, normal maps); values keep their range.

    The authors' resize: PIL bilinear (torchvision ``Resize`` on a PIL image). A uint8 rgb image gives exactly the
    authors' values (float32 here, 0-255); float inputs such as normal maps loaded in [0, 1] are resized in float,
    so they differ from the authors' resize of the 8-bit file by its rounding (at most 1 / 255: PIL's 8-bit path
    rounds after each of its two 1-D passes).

    Required Keys:
        - every key of ``keys``: (H, W, C) or (H, W), uint8 or float.

    Modified Keys:
        - every key of ``keys``: float32 (S_h, S_w, C) or (S_h, S_w).

    Added Keys:
        - img_shape: (S_h, S_w).

    Args:
        size: Output side, or (height, width).
        keys: Result keys to resize, e.g. ``('rgb',)`` or ``('rgb', 'normals')``.
    """

    def __init__(self, size: int | Sequence[int] = 256, keys: Sequence[str] = ('rgb',)):
        if isinstance(keys, str) or not keys:
            raise ValueError(f'ResizeImage: keys must be a non-empty sequence of result keys, got {keys!r}')
        self.size = to_size(size)
        self.keys = tuple(keys)

    def transform(self, results: dict) -> dict:
        """Resize every key of ``keys``."""
        for key in self.keys:
            results[key] = resize_bilinear_antialiased(results[key], self.size)
        results['img_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, keys={self.keys})'


@TRANSFORMS.register_module()
class ResizeMask(BaseTransform):
    """Resize the binary ground-truth mask as the authors' code does.

    The {0, 1} mask (binarised at its native size by ``LoadMaskFromFile``: real masks hold ids such as 253-255) is
    scaled to 0/255, resized with PIL's antialiased bilinear filter as an 8-bit image, scaled back to [0, 1] and
    thresholded.

    Required Keys:
        - gt_mask: (H, W) in {0, 1}.

    Modified Keys:
        - gt_mask: uint8 (S_h, S_w) in {0, 1}, 1 where the resized value / 255 is > ``threshold``.

    Args:
        size: Output side, or (height, width).
        threshold: A resized pixel is anomalous when its value in [0, 1] is strictly above this.
    """

    def __init__(self, size: int | Sequence[int] = 256, threshold: float = 0.5):
        self.size = to_size(size)
        self.threshold = threshold

    def transform(self, results: dict) -> dict:
        """Resize and re-binarise ``gt_mask``."""
        mask = (results['gt_mask'] > 0).astype(np.uint8) * 255
        resized = resize_bilinear_antialiased(mask, self.size) / 255
        results['gt_mask'] = (resized > self.threshold).astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, threshold={self.threshold})'
