"""The teacher contract: any timm CNN is a CRD teacher, its student shaped by ``teacher.spec`` alone."""
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmad.engine.optimizers  # noqa: F401 (registers BranchOptimWrapperConstructor)
from mmad.models.encoders import TeacherSpec
from mmad.registry import MODELS
from mmad.structures import ADDataSample

SIZE = 64
MODALITIES = ('rgb', 'depth')
OPTIM = dict(constructor='BranchOptimWrapperConstructor', type='OptimWrapper',
             optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))
PACKAGED_BASE = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models' / 'crd_effnet_lite0.py'


@pytest.fixture(autouse=True)
def mmad_scope():
    with DefaultScope.overwrite_default_scope('mmad'):
        yield


def build_crd(teacher: dict, **kwargs):
    torch.manual_seed(0)
    normalisation = dict(mean=[0.5] * 3, std=[0.5] * 3)
    cfg = dict(type='CRD', modalities=MODALITIES, teacher=teacher,
               data_preprocessor=dict(type='ADDataPreprocessor', modalities={m: normalisation for m in MODALITIES}))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def make_batch(batch=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return dict(inputs={name: [torch.rand(3, SIZE, SIZE, generator=generator) for _ in range(batch)]
                        for name in MODALITIES})


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_loss_predict_and_training(model, steps=3, batch=2):
    """``loss`` and ``predict`` at 64x64 with shapes checked, then Adam steps lower each branch's loss."""
    spec = model.teacher.spec
    data = model.data_preprocessor(make_batch(batch), False)
    teacher_feats = model.extract_teacher_feats(data['inputs'])
    expected = [(batch, channels, SIZE // stride, SIZE // stride) for channels, stride in zip(spec.out_channels,
                                                                                          spec.strides)]
    for name in MODALITIES:
        assert [tuple(f.shape) for f in teacher_feats[name]] == expected
        outputs = model._run_branch(name, teacher_feats)
        for key in ('decoder_feats', 'output_feats'):
            assert [tuple(f.shape) for f in outputs[key]] == expected
    losses = model.loss(data['inputs'])
    assert set(losses) == {f'{name}.loss_{part}' for name in MODALITIES
                           for part in ('decoder', 'filter', 'amplifier', 'output')}
    assert all(loss.ndim == 0 and torch.isfinite(loss) for loss in losses.values())

    model.aggregator.set_statistics({m: 1.0 for m in MODALITIES}, {m: 0.5 for m in MODALITIES})
    samples = model.eval().predict(data['inputs'], [ADDataSample() for _ in range(batch)])
    assert len(samples) == batch
    for sample in samples:
        assert tuple(sample.anomaly_map.shape) == (SIZE, SIZE) and sample.pred_score.ndim == 0
        assert {name: tuple(m.shape) for name, m in sample.branch_maps.items()} == {m: (SIZE, SIZE) for m in MODALITIES}

    model.train()
    optim_wrapper = build_optim_wrapper(model, OPTIM)
    history = [model.train_step(make_batch(batch), optim_wrapper) for _ in range(steps)]
    for name in MODALITIES:
        first, last = history[0][f'{name}.loss'].item(), history[-1][f'{name}.loss'].item()
        assert last < 0.95 * first, (name, [h[f'{name}.loss'].item() for h in history])


@pytest.mark.parametrize('model_name', [
    pytest.param('resnet18', marks=pytest.mark.slow),  # a 22 M-parameter student per branch
    'tf_efficientnet_lite0', 'mobilenetv3_small_050', 'convnext_atto'])
def test_random_teacher_of_any_family_trains_and_predicts(model_name):
    model = build_crd(dict(type='TimmEncoder', model_name=model_name, pretrained=False))
    check_loss_predict_and_training(model)


def test_default_student_of_efficientnet_lite0():
    model = build_crd(dict(type='TimmEncoder', model_name='tf_efficientnet_lite0'))
    spec = model.teacher.spec
    assert (spec.out_channels, spec.block_type, spec.decoder_blocks, spec.ocbe_blocks) == (
        (24, 40, 112), 'basic', (2, 2, 2), 2)
    branch = model.branch_rgb
    assert len(branch.decoder.stages) == 3 and all(len(stage) == 2 for stage in branch.decoder.stages)
    assert len(branch.ocbe.residual_stage) == 2 and branch.ocbe.out_channels == 224
    assert trainable(model.teacher) == 0
    assert trainable(branch) == trainable(model.branch_depth) == 3_916_006
    assert trainable(model) == 7_832_012


def test_student_layout_is_overridable_in_the_config():
    model = build_crd(dict(type='TimmEncoder', model_name='tf_efficientnet_lite0'),
                      decoder=dict(type='ReverseDecoder', stage_blocks=(1, 1, 3)), ocbe=dict(type='MultiInputOCBE',
                                                                                             out_blocks=1))
    assert [len(stage) for stage in model.branch_rgb.decoder.stages] == [1, 1, 3]
    assert len(model.branch_rgb.ocbe.residual_stage) == 1


def test_packaged_pretrained_teacher_from_the_config_base():
    cfg = Config.fromfile(PACKAGED_BASE)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.teacher.identity == dict(model_name='tf_efficientnet_lite0', weights_sha256=(
        '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'))
    scaled = model.data_preprocessor(dict(inputs=dict(rgb=[torch.full((3, 4, 4), 255.0)],
                                                      depth=[torch.zeros(3, 4, 4)])), False)['inputs']
    assert torch.equal(scaled['rgb'], torch.ones(1, 3, 4, 4)) and torch.equal(scaled['depth'], -torch.ones(1, 3, 4, 4))
    check_loss_predict_and_training(model)


@pytest.mark.parametrize('fields, message', [
    (dict(strides=(4, 8)), r'must have one entry per level'),
    (dict(strides=(4, 8, 32)), r'each stride must be twice the previous one, got \(4, 8, 32\)'),
    (dict(block_type='dense'), r"block_type must be one of \('basic', 'bottleneck'\), got 'dense'"),
    (dict(width_factor=2.0), r'basic blocks have width_factor 1, got 2.0'),
    (dict(ocbe_blocks=0), r'every student stage needs a block'),
])
def test_teacher_spec_rejects_inconsistent_fields(fields, message):
    spec = dict(out_channels=(8, 16, 32), strides=(4, 8, 16), block_type='basic', decoder_blocks=(2, 2, 2),
                ocbe_blocks=2)
    spec.update(fields)
    with pytest.raises(ValueError, match=message):
        TeacherSpec(**spec)


def test_teacher_spec_is_frozen_and_normalises_sequences():
    spec = TeacherSpec([8, 16], [4, 8], 'bottleneck', [1, 2], ocbe_blocks=1, width_factor=2.0)
    assert spec.out_channels == (8, 16) and spec.decoder_blocks == (1, 2) and spec.ocbe_channels == 32
    with pytest.raises(FrozenInstanceError):
        spec.ocbe_blocks = 3


def test_crd_needs_a_teacher_with_a_spec():
    class SpeclessTeacher(torch.nn.Module):
        def forward(self, x):
            return [x]

    with pytest.raises(TypeError, match='the teacher SpeclessTeacher must expose `spec`, a TeacherSpec'):
        build_crd(SpeclessTeacher())
