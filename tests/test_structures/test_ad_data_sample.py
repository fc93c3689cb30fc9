import numpy as np
import pytest
import torch

from mmad.structures import ADDataSample


def test_data_sample_setters_validate_and_convert():
    sample = ADDataSample().set_gt_label(np.array([1])).set_pred_score(0.25).set_anomaly_map(np.zeros((3, 3)))
    sample.set_branch_scores({'rgb': 0.5, 'depth': torch.tensor([0.1])})
    sample.set_branch_maps({'rgb': torch.ones(3, 3), 'depth': np.zeros((3, 3))})
    assert sample.gt_label.shape == () and sample.pred_score.dtype == torch.float32
    assert sample.is_anomalous and sample.has_prediction and sample.branch_names == ('depth', 'rgb')
    assert sample.branch_scores['depth'].shape == () and sample.branch_maps['depth'].dtype == torch.float32
    doubled = sample.to(torch.float64)
    assert doubled.branch_maps['rgb'].dtype == torch.float64 and doubled.anomaly_map.dtype == torch.float64
    assert isinstance(sample.numpy().branch_scores['rgb'], np.ndarray)
    with pytest.raises(ValueError, match='gt_label must be 0 .* or 1 .*, got 2'):
        ADDataSample().set_gt_label(2)
    with pytest.raises(ValueError, match=r'anomaly_map must be a 2-dim \(H, W\) map, got shape \(1, 3, 3\)'):
        ADDataSample().set_anomaly_map(torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match='pred_score must hold exactly one value'):
        ADDataSample().set_pred_score([0.1, 0.2])
