"""Transforms that resize image modalities (rgb, normal maps) and the ground-truth mask to the model size."""
from collections.abc import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS

from .geometry import to_size


@TRANSFORMS.register_module()
class ResizeImage(BaseTransform):
    """Bilinear resize of image-like modalities (rgb, normal maps); values keep their range.

    Required Keys:
        - every key of ``keys``: (H, W, C) or (H, W), uint8 or float.

    Modified Keys:
        - every key of ``keys``: float32 (S_h, S_w, C) or (S_h, S_w).

    Added Keys:
        - img_shape: (S_h, S_w).

    Args:
        size: Output side, or (height, width).
        keys: Result keys to resize.
    """

    def __init__(self, size: int | Sequence[int] = 256, keys: Sequence[str] = ('rgb',)):
        self.size = to_size(size)
        self.keys = tuple(keys)

    def transform(self, results: dict) -> dict:
        """Resize every key (OpenCV ``INTER_LINEAR``)."""
        height, width = self.size
        for key in self.keys:
            image = results[key].astype(np.float32)
            results[key] = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        results['img_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, keys={self.keys})'


@TRANSFORMS.register_module()
class ResizeRGB(ResizeImage):
    """Bilinear resize of the rgb image; values stay in 0-255.

    Required Keys:
        - rgb: (H, W, 3), uint8 or float.

    Modified Keys:
        - rgb: float32 (S_h, S_w, 3).

    Added Keys:
        - img_shape: (S_h, S_w).

    Args:
        size: Output side, or (height, width).
    """

    def __init__(self, size: int | Sequence[int] = 256):
        super().__init__(size=size, keys=('rgb',))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size})'


@TRANSFORMS.register_module()
class ResizeMask(BaseTransform):
    """Resize the binary ground-truth mask as the reference code does: bilinear, then threshold.

    Required Keys:
        - gt_mask: (H, W) in {0, 1}.

    Modified Keys:
        - gt_mask: uint8 (S_h, S_w) in {0, 1}, 1 where the bilinear value is > ``threshold``.

    Args:
        size: Output side, or (height, width).
        threshold: A resized pixel is anomalous when its bilinear value is strictly above this.
    """

    def __init__(self, size: int | Sequence[int] = 256, threshold: float = 0.5):
        self.size = to_size(size)
        self.threshold = threshold

    def transform(self, results: dict) -> dict:
        """Resize and re-binarise ``gt_mask``."""
        height, width = self.size
        mask = results['gt_mask'].astype(np.float32)
        resized = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        results['gt_mask'] = (resized > self.threshold).astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, threshold={self.threshold})'
