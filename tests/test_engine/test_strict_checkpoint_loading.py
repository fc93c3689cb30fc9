"""Issue 8 cases 1 and 2: a checkpoint that does not fit the model is refused with one line naming the difference."""
import uuid
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn

from mmad.engine.hooks import SafeCheckpointHook
from mmad.models.detectors import gaussian_smooth
from mmad.registry import MODELS
from mmad.utils.model_checkpoint import CheckpointMismatchError, load_model_checkpoint, match_checkpoint_to_model

NORMALISATION = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
SIZE = 32


def build_crd(modalities=('rgb', 'depth'), teacher='resnet18', seed=0, **kwargs):
    torch.manual_seed(seed)
    return MODELS.build(dict(
        type='CRD', modalities=modalities, teacher=dict(type='TimmEncoder', model_name=teacher, strides=(4, 8)),
        bottleneck=dict(type='BottleneckProjection', bottleneck_stride=16),
        data_preprocessor=dict(type='ADDataPreprocessor', modalities={name: NORMALISATION for name in modalities}),
        **kwargs)).eval()


def save_checkpoint(model, path, state_dict=None):
    """Save ``model`` as the runner does (through SafeCheckpointHook.before_save_checkpoint)."""
    checkpoint = dict(meta=dict(epoch=1, iter=1), state_dict=model.state_dict())
    SafeCheckpointHook().before_save_checkpoint(SimpleNamespace(model=model, cfg=dict(image_size=SIZE)), checkpoint)
    if state_dict is not None:
        checkpoint['state_dict'] = state_dict
    torch.save(checkpoint, path)
    return path


def load_with_runner(model, path, work_dir, resume=False):
    """The path of tools/test.py (``load_from``) or of ``--resume``."""
    # A unique experiment name: runners built in the same second would share one logger, whose handler writes to
    # the stdout of the test that created it (not captured by a later test's capsys).
    runner = Runner(model=model, work_dir=str(work_dir), load_from=str(path), resume=resume, default_scope='mmad',
                    custom_hooks=[dict(type='SafeCheckpointHook')], log_level='WARNING',
                    experiment_name=f'strict_load_{uuid.uuid4().hex}')
    runner.load_or_resume()
    return runner


def fitted_rgb_depth(seed=0):
    model = build_crd(seed=seed)
    model.aggregator.set_statistics(dict(rgb=0.25, depth=0.75), dict(rgb=0.5, depth=2.0))
    return model


@pytest.fixture(autouse=True)
def mmad_scope():
    with DefaultScope.overwrite_default_scope('mmad'):
        yield


@pytest.fixture(scope='module')
def rgb_depth_checkpoint(tmp_path_factory):
    return save_checkpoint(fitted_rgb_depth(), tmp_path_factory.mktemp('ckpt') / 'rgb_depth.pth')


def refusal(model, path, work_dir, resume=False) -> str:
    with pytest.raises(CheckpointMismatchError) as info:
        load_with_runner(model, path, work_dir, resume=resume)
    message = str(info.value)
    assert '\n' not in message
    return message


def test_matching_checkpoint_loads_every_weight_and_the_statistics(rgb_depth_checkpoint, tmp_path):
    model = build_crd(seed=1)
    load_with_runner(model, rgb_depth_checkpoint, tmp_path)
    expected = fitted_rgb_depth().state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    assert model.aggregator.is_fitted and model.aggregator.std('depth').item() == 2.0
    info = torch.load(rgb_depth_checkpoint, weights_only=True)['meta']['mmad']
    assert info == dict(image_size=SIZE, modalities=['rgb', 'depth'], branch_names=['rgb', 'depth'],
                        teacher=dict(model_name='resnet18', weights_sha256=None))


def test_other_modalities_are_refused(rgb_depth_checkpoint, tmp_path):
    message = refusal(build_crd(('rgb', 'normals')), rgb_depth_checkpoint, tmp_path)
    assert message == (f"Checkpoint {rgb_depth_checkpoint} was trained with modalities ('rgb', 'depth'), the model "
                       "has ('rgb', 'normals').")


def test_modalities_in_another_order_are_refused(rgb_depth_checkpoint, tmp_path):
    message = refusal(build_crd(('depth', 'rgb')), rgb_depth_checkpoint, tmp_path)
    assert "modalities in the order ('rgb', 'depth'), the model lists ('depth', 'rgb')" in message
    assert "set modalities=('rgb', 'depth') in the config" in message


def test_other_branches_are_refused(rgb_depth_checkpoint, tmp_path):
    message = refusal(build_crd(branches=('rgb', )), rgb_depth_checkpoint, tmp_path)
    assert "trained with branches ('rgb', 'depth'), the model has ('rgb',)" in message


def test_another_teacher_is_refused(tmp_path):
    path = save_checkpoint(build_crd(teacher='resnet34'), tmp_path / 'resnet34.pth')
    message = refusal(build_crd(), path, tmp_path)
    assert message == (f"Checkpoint {path} was trained with the teacher model_name='resnet34', the model's teacher "
                       "has model_name='resnet18'.")
    # without the recorded teacher, the keys tell: resnet34 has more blocks per stage
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint['meta']['mmad']['teacher']
    torch.save(checkpoint, path)
    message = refusal(build_crd(), path, tmp_path)
    assert message.startswith(f'Checkpoint {path} does not fit the model: ')
    assert 'unexpected weights (teacher.model.model.layer1.2.conv1.weight' in message


def test_a_file_whose_keys_match_nothing_is_refused(tmp_path):
    path = tmp_path / 'classifier.pth'
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)).state_dict(), path)
    message = refusal(build_crd(), path, tmp_path)
    assert message.startswith(f"Checkpoint {path} holds none of the model's ")
    assert 'its keys: 0.weight, 0.bias, 1.weight, ...' in message


def test_a_changed_shape_and_a_missing_weight_are_refused(tmp_path):
    state = fitted_rgb_depth().state_dict()
    state['branch_rgb.decoder.stages.0.0.conv1.weight'] = torch.zeros(1)
    del state['branch_depth.fuser.level_weights']
    checkpoint = save_checkpoint(build_crd(), tmp_path / 'edited.pth', state_dict=state)
    message = refusal(build_crd(), checkpoint, tmp_path)
    assert '1 weights missing (branch_depth.fuser.level_weights)' in message
    assert '1 shapes differ (branch_rgb.decoder.stages.0.0.conv1.weight (1,) in the checkpoint' in message


def test_resume_is_strict_too(tmp_path):
    path = save_checkpoint(fitted_rgb_depth(), tmp_path / 'rgb_depth.pth')
    message = refusal(build_crd(('rgb', 'normals')), path, tmp_path, resume=True)
    assert "modalities ('rgb', 'depth'), the model has ('rgb', 'normals')" in message


def test_wrapper_prefixes_are_tolerated(tmp_path):
    state = fitted_rgb_depth().state_dict()
    wrapped = OrderedDict((f'module.{key}'.replace('module.branch_rgb.', 'module.branch_rgb.module.'), value)
                          for key, value in state.items())
    assert 'module.branch_rgb.module.decoder.stages.0.0.conv1.weight' in wrapped
    path = save_checkpoint(build_crd(), tmp_path / 'wrapped.pth', state_dict=wrapped)
    model = build_crd(seed=3)
    load_with_runner(model, path, tmp_path)
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def old_format_state_dict(model, mean, std):
    """A state dict as CRD wrote it before the aggregator owned its statistics (positional float64 buffers) and
    before the teacher contract (the timm features model directly under ``teacher.model.``)."""
    state = OrderedDict((key.replace('teacher.model.model.', 'teacher.model.', 1), value)
                        for key, value in model.state_dict().items() if not key.startswith('aggregator.'))
    state['val_mean'] = torch.tensor(mean, dtype=torch.float64)
    state['val_std'] = torch.tensor(std, dtype=torch.float64)
    state['val_stats_ready'] = torch.tensor(True)
    return state


def test_old_checkpoints_load_through_the_key_map_and_score_the_same(tmp_path):
    trained = build_crd(seed=5)
    old_mean, old_std = [0.3, 0.9], [0.2, 0.6]  # positional, in the recorded branch order rgb, depth
    path = save_checkpoint(trained, tmp_path / 'old.pth', state_dict=old_format_state_dict(trained, old_mean,
                                                                                            old_std))
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint['meta']['mmad']['teacher']  # old checkpoints recorded no teacher
    torch.save(checkpoint, path)
    model = build_crd(seed=6)
    assert not torch.equal(model.teacher.state_dict()['model.model.conv1.weight'],
                           trained.teacher.state_dict()['model.model.conv1.weight'])
    load_with_runner(model, path, tmp_path)
    for key, value in trained.state_dict().items():
        if not key.startswith('aggregator.'):
            assert torch.equal(model.state_dict()[key], value), key
    assert model.aggregator.is_fitted
    assert [model.aggregator.mean(name).item() for name in ('rgb', 'depth')] == old_mean
    assert [model.aggregator.std(name).item() for name in ('rgb', 'depth')] == old_std
    # the old scoring formula, by hand: sum_i (smoothed_i - val_mean[i]) / val_std[i] in the branch order
    generator = torch.Generator().manual_seed(0)
    inputs = {name: torch.randn(2, 3, SIZE, SIZE, generator=generator) for name in ('rgb', 'depth')}
    raw = model.raw_branch_maps(inputs)
    smoothed = [gaussian_smooth(raw[name], model.gaussian_sigma) for name in ('rgb', 'depth')]
    old_fused = sum((smoothed[i] - torch.as_tensor(old_mean[i], dtype=torch.float32))
                    / torch.as_tensor(old_std[i], dtype=torch.float32) for i in range(2))
    samples = model.predict(inputs)
    for index, sample in enumerate(samples):
        assert torch.equal(sample.anomaly_map, old_fused[index])
        assert torch.equal(sample.pred_score, old_fused[index].max())


def test_old_statistics_follow_the_recorded_branch_order(tmp_path):
    """An old depth+rgb checkpoint: val_mean[0] belongs to depth; the key map puts it there by name."""
    trained = build_crd(('depth', 'rgb'))
    path = save_checkpoint(trained, tmp_path / 'old.pth', state_dict=old_format_state_dict(trained, [5.0, 1.0],
                                                                                            [2.0, 0.5]))
    model = build_crd(('depth', 'rgb'), seed=2)
    load_with_runner(model, path, tmp_path)
    assert model.aggregator.mean('depth').item() == 5.0 and model.aggregator.std('rgb').item() == 0.5
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint['meta']['mmad']
    with pytest.raises(CheckpointMismatchError, match='stored by position but the checkpoint records no matching '
                                                      'branch order'):
        match_checkpoint_to_model(checkpoint, model, str(path))


def test_aggregator_state_of_another_aggregator_is_not_used(rgb_depth_checkpoint, tmp_path, capsys):
    sum_model = build_crd(aggregator=dict(type='Sum'))
    load_with_runner(sum_model, rgb_depth_checkpoint, tmp_path)
    assert "its aggregator state (aggregator.mean_rgb, aggregator.std_rgb, aggregator.mean_depth, ...) does not " \
           "fit the model's aggregator (no state); it is not used" in capsys.readouterr().out
    path = save_checkpoint(sum_model, tmp_path / 'sum.pth')
    normalized = build_crd()
    load_with_runner(normalized, path, tmp_path)
    assert not normalized.aggregator.is_fitted  # ValidationStatisticsHook fits it before testing


def test_load_model_checkpoint_outside_a_runner(rgb_depth_checkpoint):
    model = build_crd(seed=4)
    checkpoint = load_model_checkpoint(model, str(rgb_depth_checkpoint))
    assert checkpoint['meta']['mmad']['modalities'] == ['rgb', 'depth'] and model.aggregator.is_fitted
    with pytest.raises(CheckpointMismatchError, match="the model lists \\('depth', 'rgb'\\)"):
        load_model_checkpoint(build_crd(('depth', 'rgb')), str(rgb_depth_checkpoint))
