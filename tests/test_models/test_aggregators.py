import numpy as np
import pytest
import torch

from mmad.models.aggregators import NormalizedSum, Product, Sum
from mmad.registry import AGGREGATORS

NAMES = ('rgb', 'depth')


def hand_made_maps():
    rgb = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    depth = torch.tensor([[[4.0, 2.0], [0.5, 1.0]]])
    return dict(rgb=rgb, depth=depth)


def test_registry_builds_each_aggregator():
    assert isinstance(AGGREGATORS.build(dict(type='NormalizedSum', branch_names=NAMES)), NormalizedSum)
    assert isinstance(AGGREGATORS.build(dict(type='Sum', branch_names=NAMES)), Sum)
    assert isinstance(AGGREGATORS.build(dict(type='Product', branch_names=NAMES)), Product)


def test_normalized_sum_state_is_keyed_by_branch_name():
    aggregator = NormalizedSum(NAMES)
    state = aggregator.state_dict()
    assert list(state) == ['mean_rgb', 'std_rgb', 'mean_depth', 'std_depth', 'fitted']
    assert all(state[key].dtype == torch.float64 and state[key].shape == () for key in list(state)[:4])
    assert aggregator.requires_fitting and not aggregator.is_fitted
    aggregator.set_statistics(dict(depth=2.0, rgb=1.0), dict(rgb=0.5, depth=4.0))
    state = aggregator.state_dict()
    assert (state['mean_rgb'].item(), state['mean_depth'].item()) == (1.0, 2.0)
    assert (state['std_rgb'].item(), state['std_depth'].item()) == (0.5, 4.0)
    assert bool(state['fitted']) and aggregator.is_fitted
    # the same names in another order load onto the same branches
    other = NormalizedSum(('depth', 'rgb'))
    other.load_state_dict(state)
    assert (other.mean('rgb').item(), other.std('depth').item()) == (1.0, 4.0)


def test_normalized_sum_equals_formula():
    aggregator = NormalizedSum(NAMES)
    aggregator.set_statistics(dict(rgb=1.0, depth=2.0), dict(rgb=0.5, depth=4.0))
    fused = aggregator(hand_made_maps())
    expected = torch.tensor([[[(0 - 1) / 0.5 + (4 - 2) / 4, (1 - 1) / 0.5 + (2 - 2) / 4],
                              [(2 - 1) / 0.5 + (0.5 - 2) / 4, (3 - 1) / 0.5 + (1 - 2) / 4]]])
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, expected)


def test_fit_equals_numpy_over_every_pixel():
    generator = torch.Generator().manual_seed(0)
    batches = [dict(rgb=torch.rand(b, 4, 5, generator=generator) * 3,
                    depth=torch.rand(b, 4, 5, generator=generator) + 7) for b in (2, 3, 1)]
    aggregator = NormalizedSum(NAMES)
    aggregator.set_statistics(dict(rgb=9.0, depth=9.0), dict(rgb=9.0, depth=9.0))
    aggregator.reset()
    assert not aggregator.is_fitted
    for batch in batches:
        aggregator.update(batch)
    fitted = aggregator.finalize()
    for name in NAMES:
        pixels = np.concatenate([batch[name].numpy().astype(np.float64).ravel() for batch in batches])
        assert fitted[name]['mean'] == pytest.approx(pixels.mean(), rel=1e-12)
        assert fitted[name]['std'] == pytest.approx(pixels.std(), rel=1e-10)
        assert aggregator.mean(name).item() == fitted[name]['mean']
    assert aggregator.is_fitted
    assert 'sums' not in ''.join(aggregator.state_dict())  # accumulators are not saved


def test_sum_and_product():
    maps = hand_made_maps()
    torch.testing.assert_close(Sum(NAMES)(maps), torch.tensor([[[4.0, 3.0], [2.5, 4.0]]]))
    torch.testing.assert_close(Product(NAMES)(maps), torch.tensor([[[0.0, 2.0], [1.0, 3.0]]]))
    for stateless in (Sum(NAMES), Product(NAMES)):
        assert not stateless.requires_fitting and stateless.is_fitted and stateless.finalize() == {}
        assert list(stateless.state_dict()) == []


def test_three_branches():
    names = ('a', 'b', 'c')
    maps = dict(a=torch.full((1, 2, 2), 2.0), b=torch.full((1, 2, 2), 3.0), c=torch.full((1, 2, 2), 5.0))
    assert Sum(names)(maps).unique().tolist() == [10.0]
    assert Product(names)(maps).unique().tolist() == [30.0]
    aggregator = NormalizedSum(names)
    aggregator.set_statistics(dict(a=1.0, b=1.0, c=1.0), dict(a=1.0, b=2.0, c=4.0))
    assert aggregator(maps).unique().tolist() == [1.0 + 1.0 + 1.0]


def test_normalized_sum_errors():
    maps = hand_made_maps()
    with pytest.raises(RuntimeError, match='not fitted.*ValidationStatisticsHook'):
        NormalizedSum(NAMES)(maps)
    with pytest.raises(ValueError, match=r"the mean needs exactly the branches \['rgb', 'depth'\]"):
        NormalizedSum(NAMES).set_statistics(dict(rgb=0.0), dict(rgb=1.0, depth=1.0))
    with pytest.raises(ValueError, match="branch 'depth' needs a finite mean and a positive std"):
        NormalizedSum(NAMES).set_statistics(dict(rgb=0.0, depth=0.0), dict(rgb=1.0, depth=0.0))
    with pytest.raises(ValueError, match='no validation map was seen'):
        NormalizedSum(NAMES).finalize()
    with pytest.raises(ValueError, match=r"fuses the maps of branches \['rgb', 'depth'\], got \['rgb'\]"):
        NormalizedSum(NAMES).update(dict(rgb=maps['rgb']))
    with pytest.raises(ValueError, match='must be identifiers'):
        NormalizedSum(('rgb', 'depth.1'))


def test_shape_mismatch_and_names():
    with pytest.raises(ValueError, match='one shape'):
        Sum(NAMES)(dict(rgb=torch.zeros(1, 2, 2), depth=torch.zeros(1, 3, 3)))
    with pytest.raises(ValueError, match='distinct names'):
        Product(())
    with pytest.raises(ValueError, match='fuses the maps of branches'):
        Product(NAMES)({})
