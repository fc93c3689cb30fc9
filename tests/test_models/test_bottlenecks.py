import pytest
import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

from mmad.models.bottlenecks import BottleneckProjection, InvertedBottleneckProjection, MultiInputOCBE
from mmad.registry import MODELS

CHANNELS = (8, 16, 32)
STRIDES = (4, 8, 16)


def level_feats(batch=2, size=64, channels=CHANNELS):
    return [torch.rand(batch, c, size // s, size // s) for c, s in zip(channels, STRIDES)]


def conv_channels(module):
    return [(m.in_channels, m.out_channels, m.stride[0]) for m in module.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def test_rd_ocbe_basic_blocks():
    ocbe = MODELS.build(dict(type='MultiInputOCBE', in_channels=CHANNELS, num_inputs=1, block_type='basic',
                             out_blocks=2, strides=STRIDES))
    assert conv_channels(ocbe.level_projections[0]) == [(8, 16, 2), (16, 32, 2)]
    assert conv_channels(ocbe.level_projections[1]) == [(16, 32, 2)]
    assert isinstance(ocbe.level_projections[2], nn.Identity)
    assert len(ocbe.residual_stage) == 2 and all(isinstance(b, BasicBlock) for b in ocbe.residual_stage)
    assert ocbe.out_channels == 64
    assert tuple(ocbe(level_feats()).shape) == (2, 64, 2, 2)


def test_crd_ocbe_rule_on_wrn50_channels():
    with torch.device('meta'):
        ocbe = MultiInputOCBE((256, 512, 1024), 2, 'bottleneck', 3, strides=(4, 8, 16), width_factor=2)
    assert conv_channels(ocbe.level_projections[0]) == [(512, 1024, 2), (1024, 1024, 2)]
    assert conv_channels(ocbe.level_projections[1]) == [(1024, 1024, 2)]
    assert conv_channels(ocbe.level_projections[2]) == [(2048, 1024, 1)]
    assert ocbe.level_projections[2][0].kernel_size == (3, 3)
    first, *rest = ocbe.residual_stage
    assert isinstance(first, Bottleneck) and len(rest) == 2
    assert (first.conv1.in_channels, first.conv2.out_channels, first.conv3.out_channels) == (3072, 1024, 2048)
    assert conv_channels(first.downsample) == [(3072, 2048, 2)]
    assert first.conv2.stride == (2, 2)
    out = ocbe([[torch.empty(1, c, 256 // s, 256 // s, device='meta')] * 2
                for c, s in zip((256, 512, 1024), (4, 8, 16))])
    assert tuple(out.shape) == (1, 2048, 8, 8)


def test_ocbe_accepts_lists_or_concatenated_inputs():
    ocbe = MultiInputOCBE(CHANNELS, num_inputs=2, block_type='bottleneck', out_blocks=1).eval()
    own, other = level_feats(), level_feats()
    from_lists = ocbe([[a, b] for a, b in zip(own, other)])
    concatenated = ocbe([torch.cat([a, b], dim=1) for a, b in zip(own, other)])
    assert tuple(from_lists.shape) == (2, 64, 2, 2)
    assert torch.equal(from_lists, concatenated)
    swapped = ocbe([[b, a] for a, b in zip(own, other)])
    assert not torch.allclose(from_lists, swapped)


def test_ocbe_default_strides_halve_per_level():
    ocbe = MultiInputOCBE((4, 8), num_inputs=1, block_type='basic', out_blocks=1)
    assert conv_channels(ocbe.level_projections[0]) == [(4, 8, 2)]
    assert tuple(ocbe([torch.rand(1, 4, 8, 8), torch.rand(1, 8, 4, 4)]).shape) == (1, 16, 2, 2)


def test_ocbe_rejects_bad_inputs():
    ocbe = MultiInputOCBE(CHANNELS, num_inputs=2, block_type='basic', out_blocks=1)
    feats = level_feats()
    with pytest.raises(ValueError, match=r'level 1 expects \(B, 2 x 16, H, W\) features, got \(2, 16, 8, 8\)'):
        ocbe([[feats[0], feats[0]], feats[1], [feats[2], feats[2]]])
    with pytest.raises(ValueError, match='expects 3 levels of features, got 2'):
        ocbe([[f, f] for f in feats[:2]])
    with pytest.raises(ValueError, match='Stride 16 is not reachable from stride 6'):
        MultiInputOCBE(CHANNELS, 1, 'basic', 1, strides=(4, 6, 16))
    with pytest.raises(ValueError, match='block_type must be one of'):
        MultiInputOCBE(CHANNELS, 1, 'wide', 1)
    with pytest.raises(ValueError, match='BasicBlock supports width_factor=1 only'):
        MultiInputOCBE(CHANNELS, 1, 'basic', 1, width_factor=2)


@pytest.mark.parametrize('bottleneck_stride, halvings', [(16, (2, 1, 0)), (32, (3, 2, 1)), (64, (4, 3, 2))])
def test_bottleneck_projection_reaches_the_bottleneck(bottleneck_stride, halvings):
    bp = BottleneckProjection(CHANNELS, STRIDES, bottleneck_stride=bottleneck_stride)
    assert bp.halvings == halvings
    feats = level_feats(size=128)
    bottleneck_shapes = []
    for projection, n in zip(bp.projections, halvings):
        if n:
            projection[n - 1].register_forward_hook(lambda m, i, o: bottleneck_shapes.append(tuple(o.shape[1:])))
    outs = bp(feats)
    assert [o.shape for o in outs] == [f.shape for f in feats]
    size = 128 // bottleneck_stride
    assert bottleneck_shapes == [(c * 2**n, size, size) for c, n in zip(CHANNELS, halvings) if n]
    assert all(torch.all(o >= 0) for o, n in zip(outs, halvings) if n)


def test_bottleneck_projection_layers_for_crd():
    bp = BottleneckProjection(CHANNELS, STRIDES)
    assert conv_channels(bp.projections[0]) == [(8, 16, 2), (16, 32, 2), (32, 64, 2), (64, 32, 2), (32, 16, 2),
                                                (16, 8, 2)]
    assert [type(m[0]) for m in bp.projections[2]] == [nn.Conv2d, nn.ConvTranspose2d]
    assert all(m[0].kernel_size == (2, 2) for m in bp.projections[1])
    assert isinstance(bp.projections[0][-1][-1], nn.ReLU)


def test_bottleneck_projection_identity_and_errors():
    bp = BottleneckProjection(CHANNELS, STRIDES, bottleneck_stride=None)
    feats = level_feats()
    assert all(out is f for out, f in zip(bp(feats), feats))
    assert sum(p.numel() for p in bp.parameters()) == 0
    with pytest.raises(ValueError, match='Stride 8 is not reachable from stride 16'):
        BottleneckProjection(CHANNELS, STRIDES, bottleneck_stride=8)
    with pytest.raises(ValueError, match='Stride 48 is not reachable from stride 4'):
        BottleneckProjection(CHANNELS, STRIDES, bottleneck_stride=48)
    with pytest.raises(ValueError, match=r'level 0: height and width must be divisible by 8 .* \(1, 8, 12, 12\)'):
        BottleneckProjection(CHANNELS, STRIDES)(level_feats(batch=1, size=48))


@pytest.mark.parametrize('expansion', [2, 4])
def test_inverted_bottleneck_projection(expansion):
    ibp = MODELS.build(dict(type='InvertedBottleneckProjection', in_channels=CHANNELS, expansion=expansion))
    for projection, c in zip(ibp.projections, CHANNELS):
        assert conv_channels(projection) == [(c, c, 1), (c, expansion * c, 1), (expansion * c, c, 1)]
        assert [block[0].kernel_size for block in projection] == [(3, 3), (1, 1), (1, 1)]
        assert [type(block[1]) for block in projection] == [nn.BatchNorm2d] * 3
    feats = level_feats()
    outs = ibp(feats)
    assert [o.shape for o in outs] == [f.shape for f in feats]
    assert all(torch.all(o >= 0) for o in outs)


def test_inverted_bottleneck_projection_identity():
    ibp = InvertedBottleneckProjection(CHANNELS, expansion=None)
    feats = level_feats()
    assert all(out is f for out, f in zip(ibp(feats), feats))
    with pytest.raises(ValueError, match='expects 3 levels, got 1'):
        ibp(feats[:1])


def test_init_weights_kaiming_convs_only():
    bp = BottleneckProjection((8,), (16,), bottleneck_stride=32)
    transposed = bp.projections[0][1][0].weight.detach().clone()
    bp.init_weights()
    assert torch.equal(bp.projections[0][1][0].weight, transposed)
    conv = bp.projections[0][0][0]  # 8 -> 16, 2x2: Kaiming fan_out std = sqrt(2 / (16 * 4)).
    assert conv.weight.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.2)


def test_projections_are_trainable():
    bp = BottleneckProjection(CHANNELS, STRIDES)
    ibp = InvertedBottleneckProjection(CHANNELS)
    feats = level_feats()
    loss = sum(o.sum() for o in bp(feats) + ibp(feats))
    loss.backward()
    assert all(p.grad is not None for p in list(bp.parameters()) + list(ibp.parameters()))
