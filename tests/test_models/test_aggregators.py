import pytest
import torch

from mmad.models.aggregators import NormalizedSum, Product, Sum
from mmad.registry import AGGREGATORS


def hand_made_maps():
    rgb = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    depth = torch.tensor([[[4.0, 2.0], [0.5, 1.0]]])
    return dict(rgb=rgb, depth=depth)


def test_registry_builds_each_aggregator():
    assert isinstance(AGGREGATORS.build(dict(type='NormalizedSum')), NormalizedSum)
    assert isinstance(AGGREGATORS.build(dict(type='Sum')), Sum)
    assert isinstance(AGGREGATORS.build(dict(type='Product')), Product)


def test_normalized_sum_equals_formula():
    maps = hand_made_maps()
    mean = dict(rgb=1.0, depth=torch.tensor(2.0, dtype=torch.float64))
    std = dict(rgb=0.5, depth=torch.tensor(4.0, dtype=torch.float64))
    fused = NormalizedSum()(maps, mean, std)
    expected = torch.tensor([[[(0 - 1) / 0.5 + (4 - 2) / 4, (1 - 1) / 0.5 + (2 - 2) / 4],
                              [(2 - 1) / 0.5 + (0.5 - 2) / 4, (3 - 1) / 0.5 + (1 - 2) / 4]]])
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, expected)


def test_sum_and_product():
    maps = hand_made_maps()
    torch.testing.assert_close(Sum()(maps), torch.tensor([[[4.0, 3.0], [2.5, 4.0]]]))
    torch.testing.assert_close(Product()(maps), torch.tensor([[[0.0, 2.0], [1.0, 3.0]]]))


def test_three_branches():
    maps = dict(a=torch.full((1, 2, 2), 2.0), b=torch.full((1, 2, 2), 3.0), c=torch.full((1, 2, 2), 5.0))
    assert Sum()(maps).unique().tolist() == [10.0]
    assert Product()(maps).unique().tolist() == [30.0]
    fused = NormalizedSum()(maps, dict(a=1.0, b=1.0, c=1.0), dict(a=1.0, b=2.0, c=4.0))
    assert fused.unique().tolist() == [1.0 + 1.0 + 1.0]


def test_normalized_sum_errors():
    maps = hand_made_maps()
    with pytest.raises(ValueError, match='set_validation_statistics'):
        NormalizedSum()(maps)
    with pytest.raises(ValueError, match=r"mean for branch\(es\) \['depth'\]"):
        NormalizedSum()(maps, dict(rgb=0.0), dict(rgb=1.0, depth=1.0))
    assert NormalizedSum.requires_statistics and not Sum.requires_statistics and not Product.requires_statistics


def test_shape_mismatch_and_empty():
    with pytest.raises(ValueError, match='one shape'):
        Sum()(dict(rgb=torch.zeros(1, 2, 2), depth=torch.zeros(1, 3, 3)))
    with pytest.raises(ValueError, match='at least one branch map'):
        Product()({})
