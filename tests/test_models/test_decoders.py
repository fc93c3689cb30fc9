import pytest
import torch
from torch import nn

from mmad.models.decoders import ReverseDecoder, UpsamplingBasicBlock, UpsamplingBottleneck
from mmad.registry import MODELS


def build_basic_decoder(stage_blocks=(2, 2, 2)):
    return MODELS.build(dict(type='ReverseDecoder', block_type='basic', in_channels=32, out_channels=(8, 16, 24),
                             stage_blocks=stage_blocks))


def test_basic_decoder_shapes_shallow_to_deep():
    decoder = build_basic_decoder()
    feats = decoder(torch.rand(2, 32, 3, 2))
    assert [tuple(f.shape) for f in feats] == [(2, 8, 24, 16), (2, 16, 12, 8), (2, 24, 6, 4)]


def test_stages_are_deep_to_shallow_and_compose_to_forward():
    decoder = build_basic_decoder(stage_blocks=(1, 2, 3)).eval()
    assert isinstance(decoder.stages, nn.ModuleList)
    assert [len(stage) for stage in decoder.stages] == [1, 2, 3]
    x = torch.rand(1, 32, 2, 2)
    level2 = decoder.stages[0](x)
    level1 = decoder.stages[1](level2)
    level0 = decoder.stages[2](level1)
    assert [f.shape[1] for f in (level0, level1, level2)] == [8, 16, 24]
    for feature, manual in zip(decoder(x), (level0, level1, level2)):
        assert torch.equal(feature, manual)


def test_only_first_block_of_a_stage_upsamples():
    decoder = build_basic_decoder()
    for stage in decoder.stages:
        first, *rest = stage
        assert isinstance(first.conv1, nn.ConvTranspose2d)
        assert first.conv1.kernel_size == (2, 2) and first.conv1.stride == (2, 2)
        assert isinstance(first.shortcut[0], nn.ConvTranspose2d)
        for block in rest:
            assert block.shortcut is None
            assert block.conv1.kernel_size == (3, 3) and block.conv1.stride == (1, 1)
    strided_convs = [m for m in decoder.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert strided_convs == []


def test_bottleneck_decoder_widths_and_shapes():
    decoder = ReverseDecoder('bottleneck', in_channels=128, out_channels=(16, 32, 64), stage_blocks=(1, 2, 1),
                             width_factor=2)
    first = decoder.stages[0][0]
    assert isinstance(first, UpsamplingBottleneck)
    # planes = 64 / 4 = 16, inner width = 2 * 16.
    assert (first.conv1.in_channels, first.conv1.out_channels) == (128, 32)
    assert isinstance(first.conv2, nn.ConvTranspose2d) and first.conv2.out_channels == 32
    assert first.conv3.out_channels == 64
    assert decoder.stages[1][1].conv2.kernel_size == (3, 3)
    feats = decoder(torch.rand(2, 128, 2, 2))
    assert [tuple(f.shape) for f in feats] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]


def test_upsampling_block_residual_value():
    block = UpsamplingBasicBlock(4, 4).eval()
    for module in (block.conv1, block.conv2):
        nn.init.zeros_(module.weight)
    x = torch.randn(1, 4, 3, 3)
    # Zero convolutions leave BN's bias (0), so the block is relu(0 + x).
    assert torch.equal(block(x), torch.relu(x))


def test_init_weights_follows_rd():
    decoder = ReverseDecoder('bottleneck', in_channels=128, out_channels=(16, 32, 64), stage_blocks=(1, 1, 1))
    transposed = decoder.stages[0][0].conv2.weight.detach().clone()
    for bn in (m for m in decoder.modules() if isinstance(m, nn.BatchNorm2d)):
        nn.init.constant_(bn.weight, 5.0)
    decoder.init_weights()
    assert torch.equal(decoder.stages[0][0].conv2.weight, transposed)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0)
               for m in decoder.modules() if isinstance(m, nn.BatchNorm2d))
    conv = decoder.stages[0][0].conv1  # 1x1, 128 -> 16: Kaiming fan_out std = sqrt(2 / 16).
    assert conv.weight.std().item() == pytest.approx((2 / 16) ** 0.5, rel=0.1)


def test_rejects_bad_configs():
    with pytest.raises(ValueError, match=r"block_type must be one of \('basic', 'bottleneck'\), got 'dense'"):
        ReverseDecoder('dense', 32, (8, 16), (1, 1))
    with pytest.raises(ValueError, match='one entry per level'):
        ReverseDecoder('basic', 32, (8, 16, 24), (1, 1))
    with pytest.raises(ValueError, match='UpsamplingBottleneck needs output channels divisible by 4, got 18'):
        ReverseDecoder('bottleneck', 32, (8, 18), (1, 1))
    with pytest.raises(ValueError, match='width_factor=1 only'):
        ReverseDecoder('basic', 32, (8, 16), (1, 1), width_factor=2)
    with pytest.raises(ValueError, match='at least one block'):
        ReverseDecoder('basic', 32, (8, 16), (1, 0))
