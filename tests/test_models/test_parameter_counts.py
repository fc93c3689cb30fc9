"""Exact sizes of CRD's parts: the paper's WRN50 teacher (the authors' code) and a default student."""
import pytest
import torch

from mmad.models.bottlenecks import BottleneckProjection, InvertedBottleneckProjection, MultiInputOCBE
from mmad.models.decoders import ReverseDecoder
from mmad.models.encoders import TimmEncoder
from mmad.models.fusers import SoftmaxFuser


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def rd_ocbe(spec, num_inputs=1):
    return MultiInputOCBE(spec.out_channels, num_inputs, spec.block_type, spec.ocbe_blocks, strides=spec.strides,
                          width_factor=spec.width_factor)


def build_parts(teacher, num_inputs=2):
    spec = teacher.spec
    return dict(
        ocbe=rd_ocbe(spec, num_inputs),
        decoder=ReverseDecoder(spec.block_type, spec.ocbe_channels, spec.out_channels, spec.decoder_blocks,
                               width_factor=spec.width_factor),
        bp=BottleneckProjection(spec.out_channels, spec.strides, bottleneck_stride=32),
        ibp=InvertedBottleneckProjection(spec.out_channels, expansion=2),
        fuser=SoftmaxFuser(num_inputs=2, num_levels=spec.num_levels))


def run_student(teacher, parts, images):
    own, assist = teacher(images), teacher(images.flip(-1))
    filtered = parts['bp'](assist)
    embedding = parts['ocbe']([[o, f] for o, f in zip(own, filtered)])
    return own, filtered, embedding, parts['decoder'](embedding), parts['ibp'](assist)


@pytest.fixture(scope='module')
def meta_wrn50():
    with torch.device('meta'):
        teacher = TimmEncoder('wide_resnet50_2.tv_in1k')
        parts = build_parts(teacher)
        rd_student_ocbe = rd_ocbe(teacher.spec)
    return teacher, parts, rd_student_ocbe


def test_wrn50_trainable_parameter_counts(meta_wrn50):
    teacher, parts, rd_ocbe = meta_wrn50
    assert trainable(teacher) == 0
    assert trainable(parts['ocbe']) == 90_738_688
    assert trainable(parts['decoder']) == 24_917_504
    assert trainable(parts['bp']) == 59_794_944
    assert trainable(parts['ibp']) == 17_905_664
    assert trainable(parts['fuser']) == 6
    assert sum(trainable(part) for part in parts.values()) == 193_356_806
    assert trainable(rd_ocbe) + trainable(parts['decoder']) == 83_802_624


def test_wrn50_shapes_at_256(meta_wrn50):
    teacher, parts, _ = meta_wrn50
    images = torch.empty(2, 3, 256, 256, device='meta')
    own, filtered, embedding, decoded, amplified = run_student(teacher, parts, images)
    expected = [(2, 256, 64, 64), (2, 512, 32, 32), (2, 1024, 16, 16)]
    assert [tuple(f.shape) for f in own] == expected
    assert [tuple(f.shape) for f in filtered] == expected
    assert tuple(embedding.shape) == (2, 2048, 8, 8)
    assert [tuple(f.shape) for f in decoded] == expected
    assert [tuple(f.shape) for f in amplified] == expected


def test_wrn50_forward_small_input():
    torch.manual_seed(0)
    teacher = TimmEncoder('wide_resnet50_2')
    parts = build_parts(teacher)
    for part in parts.values():
        part.init_weights()
        part.eval()
    with torch.no_grad():
        own, filtered, embedding, decoded, amplified = run_student(teacher, parts, torch.rand(1, 3, 64, 64))
        fused = [parts['fuser'](level, [d, a]) for level, (d, a) in enumerate(zip(decoded, amplified))]
    expected = [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4)]
    assert tuple(embedding.shape) == (1, 2048, 2, 2)
    for feats in (own, filtered, decoded, amplified, fused):
        assert [tuple(f.shape) for f in feats] == expected
        assert all(torch.isfinite(f).all() for f in feats)


def test_resnet18_end_to_end_reproduces_teacher_shapes():
    teacher = TimmEncoder('resnet18')
    parts = build_parts(teacher)
    assert teacher.spec.block_type == 'basic'
    assert trainable(parts['fuser']) == 6
    images = torch.rand(2, 3, 96, 64)
    own, filtered, embedding, decoded, amplified = run_student(teacher, parts, images)
    assert tuple(embedding.shape) == (2, 512, 3, 2)
    for feats in (filtered, decoded, amplified):
        assert [f.shape for f in feats] == [f.shape for f in own]
    assert [f.shape for f in parts['decoder'](rd_ocbe(teacher.spec)(own))] == [f.shape for f in own]


def test_efficientnet_lite0_default_student_parameter_counts():
    """The default student of a non-ResNet teacher: basic blocks, 2 per decoder stage, 2 in the OCBE."""
    with torch.device('meta'):
        teacher = TimmEncoder('tf_efficientnet_lite0')
        parts = build_parts(teacher)
        rd_student_ocbe = rd_ocbe(teacher.spec)
    assert teacher.spec.out_channels == (24, 40, 112) and teacher.spec.ocbe_channels == 224
    assert trainable(parts['ocbe']) == 2_555_168
    assert trainable(parts['decoder']) == 643_424
    assert trainable(parts['bp']) == 524_640
    assert trainable(parts['ibp']) == 192_768
    assert sum(trainable(part) for part in parts.values()) == 3_916_006
    assert trainable(rd_student_ocbe) + trainable(parts['decoder']) == 2_852_672
