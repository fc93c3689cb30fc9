"""Load a depth map stored as a single-channel image (e.g. a 16-bit PNG from a depth camera)."""
from collections.abc import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmad.registry import TRANSFORMS

from .file_io import read_png
from .loading import check_same_size


@TRANSFORMS.register_module()
class LoadDepthFromFile(BaseTransform):
    """Load a single-channel 8- or 16-bit depth image and min-max scale its valid pixels into ``output_range``.

    Pixels equal to ``missing_value`` are missing and become 0, as the background of ``DepthFromPoints``; the
    other values are scaled per sample from their (min, max) to ``output_range`` (one value: its middle). The
    depth's units do not matter. A file where every pixel is missing is an error naming it.

    Required Keys:
        - depth_path: single-channel PNG (or any image OpenCV reads), uint8 or uint16.

    Added Keys:
        - depth: float32 (H, W), in ``output_range`` where valid, 0 where missing.
        - loaded_sizes, ori_shape (when absent): see :func:`~mmad.datasets.transforms.check_same_size`.

    Args:
        output_range: (low, high), 0 < low < high.
        missing_value: The value of missing pixels in the file.
    """

    def __init__(self, output_range: Sequence[float] = (0.1, 0.9), missing_value: int = 0):
        low, high = output_range
        if not 0 < low < high:
            raise ValueError(f'output_range must satisfy 0 < low < high (0 marks missing pixels), got {output_range}')
        self.output_range = (float(low), float(high))
        self.missing_value = int(missing_value)

    def transform(self, results: dict) -> dict:
        """Read ``depth_path`` and add the scaled ``depth``."""
        path = results['depth_path']
        encoded = read_png(path, cv2.IMREAD_UNCHANGED)
        if encoded.ndim != 2 or encoded.dtype not in (np.uint8, np.uint16):
            raise ValueError(f'{path}: expected a single-channel 8- or 16-bit depth image, got shape {encoded.shape} '
                             f'and dtype {encoded.dtype}')
        check_same_size(results, 'depth', encoded.shape, path)
        valid = encoded != self.missing_value
        if not valid.any():
            raise ValueError(f'{path}: every pixel is missing (= {self.missing_value}): the depth map is empty')
        values = encoded[valid].astype(np.float64)
        low, high = self.output_range
        span = values.max() - values.min()
        scaled = (values - values.min()) / span if span else np.full_like(values, 0.5)
        depth = np.zeros(encoded.shape, dtype=np.float32)
        depth[valid] = low + scaled * (high - low)
        results['depth'] = depth
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(output_range={self.output_range}, missing_value={self.missing_value})'
