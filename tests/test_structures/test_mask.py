import cv2
import numpy as np
import pytest

from mmad.datasets.transforms import LoadMaskFromFile
from mmad.evaluation.metrics.ad_metric import read_native_mask
from mmad.structures import binarise_mask


def test_any_positive_value_in_any_channel_is_anomalous():
    ids = np.array([[0, 1, 253, 254, 255]], np.uint8)
    assert binarise_mask(ids).tolist() == [[False, True, True, True, True]]
    colour = np.zeros((1, 3, 3), np.uint16)
    colour[0, 1, 2] = 1
    assert binarise_mask(colour).tolist() == [[False, True, False]]
    with pytest.raises(ValueError, match=r'\(H, W\) or \(H, W, C\), got shape \(3,\)'):
        binarise_mask(np.zeros(3))


def test_the_loader_and_the_metric_share_it(tmp_path):
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1, 2, 0], mask[3, 4, 2] = 253, 7
    cv2.imwrite(str(tmp_path / 'gt.png'), mask)
    loaded = LoadMaskFromFile().transform(dict(gt_path=str(tmp_path / 'gt.png')))['gt_mask']
    np.testing.assert_array_equal(loaded.astype(bool), read_native_mask(str(tmp_path / 'gt.png'), (4, 5)))
    np.testing.assert_array_equal(loaded.astype(bool), binarise_mask(mask))
