import pytest
import torch

from mmad.models.fusers import SoftmaxFuser
from mmad.registry import MODELS


def features(shape=(2, 3, 4, 4)):
    return [torch.randn(shape, requires_grad=True), torch.randn(shape, requires_grad=True)]


def test_softmax_mode_starts_at_half_half():
    fuser = MODELS.build(dict(type='SoftmaxFuser', num_inputs=2, num_levels=3))
    assert fuser.level_weights.shape == (3, 2)
    assert sum(p.numel() for p in fuser.parameters()) == 6
    for level in range(3):
        assert torch.equal(fuser.weights(level), torch.tensor([0.5, 0.5]))
    a, b = features()
    torch.testing.assert_close(fuser(1, [a, b]), 0.5 * a + 0.5 * b)


def test_free_mode_uses_raw_weights():
    fuser = SoftmaxFuser(num_inputs=2, num_levels=3, mode='free')
    assert torch.equal(fuser.weights(0), torch.ones(2))
    a, b = features()
    torch.testing.assert_close(fuser(0, [a, b]), a + b)
    with torch.no_grad():
        fuser.level_weights[2] = torch.tensor([0.25, -2.0])
    torch.testing.assert_close(fuser(2, [a, b]), 0.25 * a - 2.0 * b)


def test_softmax_weights_per_level():
    fuser = SoftmaxFuser(num_inputs=3, num_levels=2, init_value=0.0)
    with torch.no_grad():
        fuser.level_weights[1] = torch.log(torch.tensor([1.0, 2.0, 5.0]))
    torch.testing.assert_close(fuser.weights(1), torch.tensor([0.125, 0.25, 0.625]))
    torch.testing.assert_close(fuser.weights(0), torch.full((3,), 1 / 3))
    feats = [torch.full((1, 1, 1, 1), value) for value in (8.0, 4.0, 1.6)]
    torch.testing.assert_close(fuser(1, feats), torch.full((1, 1, 1, 1), 8 * 0.125 + 4 * 0.25 + 1.6 * 0.625))


def test_gradients_without_detach():
    fuser = SoftmaxFuser()
    a, b = features()
    fuser(0, [a, b]).sum().backward()
    torch.testing.assert_close(a.grad, torch.full_like(a, 0.5))
    torch.testing.assert_close(b.grad, torch.full_like(b, 0.5))
    # d/dw_i sum_j softmax(w)_j S_j = s_i (S_i - sum_j s_j S_j) = (S_0 - S_1) / 4 at w = (1, 1).
    s0, s1 = a.sum().item(), b.sum().item()
    torch.testing.assert_close(fuser.level_weights.grad[0], torch.tensor([(s0 - s1) / 4, (s1 - s0) / 4]))
    assert torch.equal(fuser.level_weights.grad[1:], torch.zeros(2, 2))


def test_detach_weights_trains_only_the_inputs():
    fuser = SoftmaxFuser()
    a, b = features()
    fuser(2, [a, b], detach_weights=True).sum().backward()
    assert fuser.level_weights.grad is None
    torch.testing.assert_close(a.grad, torch.full_like(a, 0.5))
    torch.testing.assert_close(b.grad, torch.full_like(b, 0.5))


def test_detach_inputs_trains_only_the_weights():
    fuser = SoftmaxFuser(mode='free')
    a, b = features()
    out = fuser(1, [a, b], detach_inputs=True)
    assert out.requires_grad
    out.sum().backward()
    assert a.grad is None and b.grad is None
    torch.testing.assert_close(fuser.level_weights.grad[1], torch.stack([a.sum(), b.sum()]).detach())


def test_rejects_bad_arguments():
    fuser = SoftmaxFuser()
    a, b = features()
    with pytest.raises(ValueError, match='expects 2 features, got 1'):
        fuser(0, [a])
    with pytest.raises(ValueError, match='features of one shape'):
        fuser(0, [a, b[:, :2]])
    with pytest.raises(IndexError, match='level must be in 0..2, got 3'):
        fuser(3, [a, b])
    with pytest.raises(ValueError, match=r"mode must be one of \('softmax', 'free'\), got 'max'"):
        SoftmaxFuser(mode='max')
