"""The one binarisation of ground-truth mask files, shared by the mask loader, the dataset labels and the metric."""
import numpy as np


def binarise_mask(image: np.ndarray) -> np.ndarray:
    """Anomalous pixels of a decoded mask file: every value > 0, in any channel.

    Real masks hold class ids (MVTec 3D-AD: e.g. 253-255) rather than only 255, and some are stored as colour
    images; a pixel is anomalous when any of its channels is non-zero.

    Args:
        image: (H, W) or (H, W, C) decoded mask, any integer or float dtype.

    Returns:
        bool (H, W).
    """
    if image.ndim not in (2, 3):
        raise ValueError(f'a mask must be (H, W) or (H, W, C), got shape {image.shape}')
    anomalous = image > 0
    return anomalous.any(axis=2) if anomalous.ndim == 3 else anomalous
