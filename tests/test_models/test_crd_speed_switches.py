"""CRD's speed switches change no result: memory format, evaluation under inference_mode, fused Adam, compile."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from test_crd import OPTIM, SIZE, build_crd, make_batch, make_inputs

from mmad.engine.hooks import fit_aggregator

SCHEDULE = 'configs/_base_/schedules/crd_adam_200e.py'


@pytest.fixture(autouse=True)
def mmad_scope():
    with DefaultScope.overwrite_default_scope('mmad'):
        yield


def test_memory_format_is_validated():
    with pytest.raises(ValueError, match=r"CRD: memory_format must be one of \['channels_last', "
                                         r"'contiguous_format'\], got 'nhwc'"):
        build_crd(memory_format='nhwc')


def test_channels_last_gives_the_same_maps_losses_and_update():
    nchw = build_crd(memory_format='contiguous_format')
    nhwc = build_crd(memory_format='channels_last')
    weights = [p for p in nhwc.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert all(p.is_contiguous() for p in nchw.parameters())
    inputs = make_inputs(nchw.modalities)
    maps_nchw, maps_nhwc = nchw.eval()(inputs, mode='tensor'), nhwc.eval()(inputs, mode='tensor')
    for name in nchw.branch_names:
        torch.testing.assert_close(maps_nhwc[name], maps_nchw[name], rtol=1e-5, atol=1e-5)
    losses = {}
    for model in (nchw, nhwc):
        data = model.data_preprocessor(make_batch(model.modalities), True)
        losses[model] = model.train().loss(data['inputs'])
        sum(losses[model].values()).backward()
    assert list(losses[nchw]) == list(losses[nhwc])
    for key, value in losses[nchw].items():
        torch.testing.assert_close(losses[nhwc][key], value, rtol=1e-5, atol=1e-6)
    grads = [(name, param.grad) for name, param in nchw.named_parameters() if param.requires_grad]
    for (name, grad), param in zip(grads, (param for param in nhwc.parameters() if param.requires_grad)):
        torch.testing.assert_close(param.grad, grad, rtol=1e-3, atol=1e-3 * grad.abs().max().item(), msg=name)


def test_evaluation_runs_under_inference_mode_and_scores_as_before():
    model = build_crd().eval()
    batch = make_batch(model.modalities)
    fitted = fit_aggregator(model, [copy.deepcopy(batch)])  # the hook's statistics pass, under inference_mode
    assert set(fitted) == {'rgb', 'depth'} and model.aggregator.is_fitted
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), False)
        expected = model.predict(data['inputs'])
    for step in (model.val_step, model.test_step):
        samples = step(copy.deepcopy(batch))
        assert all(sample.anomaly_map.is_inference() for sample in samples)
        for sample, reference in zip(samples, expected):
            assert torch.equal(sample.anomaly_map, reference.anomaly_map)
            assert torch.equal(sample.pred_score, reference.pred_score)
    # Buffers and parameters are untouched by inference mode: training continues afterwards.
    assert not any(tensor.is_inference() for tensor in [*model.parameters(), *model.buffers()])
    log_vars = model.train().train_step(batch, build_optim_wrapper(model, OPTIM))
    assert torch.isfinite(log_vars['loss'])


def test_schedule_uses_fused_adam_with_unchanged_updates():
    schedule = Config.fromfile(SCHEDULE).optim_wrapper
    assert schedule.optimizer.fused is True
    reference = build_crd()
    fused = copy.deepcopy(reference)
    plain_optim = dict(schedule, optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))
    optim_plain, optim_fused = build_optim_wrapper(reference, plain_optim), build_optim_wrapper(fused, schedule)
    assert all(group['fused'] for name in fused.branch_names for group in optim_fused[name].param_groups)
    assert not any(group['fused'] for name in reference.branch_names for group in optim_plain[name].param_groups)
    for step in range(2):
        log_plain = reference.train().train_step(make_batch(reference.modalities), optim_plain)
        log_fused = fused.train().train_step(make_batch(fused.modalities), optim_fused)
        torch.testing.assert_close(log_fused['loss'], log_plain['loss'], rtol=1e-5, atol=1e-6)
        if step == 0:  # same gradients: the updates agree to float rounding
            for (key, before), after in zip(reference.state_dict().items(), fused.state_dict().values()):
                torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
def test_compiled_parts_give_the_eager_maps_and_losses():
    # A teacher of one level (resnet18 layer 1): every part is compiled, each in a few kernels (cold inductor cache,
    # 2 cores: 49 s for the test against 80 s with two levels).
    eager = build_crd(teacher=dict(type='TimmEncoder', model_name='resnet18', strides=(4, )))
    compiled = copy.deepcopy(eager)
    compiled.compile_parts()
    assert set(compiled.state_dict()) == set(eager.state_dict())
    inputs = make_inputs(eager.modalities)
    maps_eager, maps_compiled = eager.eval()(inputs, mode='tensor'), compiled.eval()(inputs, mode='tensor')
    for name in eager.branch_names:
        assert maps_compiled[name].shape == (2, SIZE, SIZE)
        torch.testing.assert_close(maps_compiled[name], maps_eager[name], rtol=1e-4, atol=1e-4)
    # One step: its losses come before any update (Adam's first step, about lr * sign(gradient), would turn float
    # rounding of near-zero gradients into differences of 2 * lr in the weights).
    optim_eager, optim_compiled = build_optim_wrapper(eager, OPTIM), build_optim_wrapper(compiled, OPTIM)
    before = {key: value.clone() for key, value in compiled.state_dict().items()}
    log_eager = eager.train().train_step(make_batch(eager.modalities), optim_eager)
    log_compiled = compiled.train().train_step(make_batch(compiled.modalities), optim_compiled)
    for key, value in log_eager.items():
        torch.testing.assert_close(log_compiled[key], value, rtol=1e-4, atol=1e-5, msg=key)
    changed = [key for key, value in compiled.state_dict().items() if not torch.equal(value, before[key])]
    assert all(any(key.startswith(f'branch_{name}.') for key in changed) for name in eager.branch_names)
    assert not any(key.startswith('teacher.') for key in changed)
