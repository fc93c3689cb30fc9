import copy

import pytest
import torch
from mmengine.model import BaseModule, MMSeparateDistributedDataParallel
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import DefaultScope

import mmad.engine.optimizers  # noqa: F401 (registers BranchOptimWrapperConstructor)
from mmad.models.detectors import CRD, CRDBranch, gaussian_smooth
from mmad.registry import MODELS
from mmad.structures import ADDataSample

SIZE = 64
LEVEL_SHAPES = [(64, 16, 16), (128, 8, 8), (256, 4, 4)]  # resnet18 layer1..3 at 64x64
NORMALISATION = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
OPTIM = dict(constructor='BranchOptimWrapperConstructor', type='OptimWrapper',
             optimizer=dict(type='Adam', lr=0.005, betas=(0.5, 0.999)))


def build_crd(modalities=('rgb', 'depth'), **kwargs) -> CRD:
    torch.manual_seed(0)
    cfg = dict(type='CRD', modalities=modalities, teacher=dict(type='TimmEncoder', model_name='resnet18'),
               data_preprocessor=dict(type='ADDataPreprocessor',
                                      modalities={name: NORMALISATION for name in modalities}))
    cfg.update(kwargs)
    return MODELS.build(cfg)


_CACHE = {}


def cached_crd(modalities=('rgb', 'depth'), **kwargs) -> CRD:
    """A shared model in eval mode, for tests that neither train it nor change its buffers."""
    key = (tuple(modalities), tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = build_crd(modalities, **kwargs).eval()
    return _CACHE[key].eval()


def make_inputs(modalities, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, 3, SIZE, SIZE, generator=generator) for name in modalities}


def make_batch(modalities, batch=2):
    generator = torch.Generator().manual_seed(1)
    return dict(inputs={name: [torch.rand(1 if name == 'depth' else 3, SIZE, SIZE, generator=generator)
                               for _ in range(batch)] for name in modalities})


def submodule_names(branch):
    return {name for name, _ in branch.named_children()}


@pytest.fixture(autouse=True)
def mmad_scope():
    with DefaultScope.overwrite_default_scope('mmad'):
        yield


@pytest.fixture
def crd2():
    return cached_crd()


@pytest.mark.parametrize('modalities', [('rgb', 'depth'), ('rgb', 'depth', 'normals')])
def test_shapes_of_every_output(modalities):
    model = copy.deepcopy(cached_crd(modalities))
    modalities = model.modalities
    inputs = make_inputs(modalities)
    teacher_feats = model.extract_teacher_feats(inputs)
    assert set(teacher_feats) == set(modalities)
    assert [tuple(f.shape[1:]) for f in teacher_feats['rgb']] == LEVEL_SHAPES
    for name in model.branch_names:
        assists = [m for m in modalities if m != name]
        assert model.assists_of(name) == tuple(assists)
        with torch.no_grad():
            out = getattr(model, f'branch_{name}')(teacher_feats[name], {a: teacher_feats[a] for a in assists})
        assert set(out) == {'decoder_feats', 'filter_feats', 'amplifier_feats', 'output_feats'}
        assert list(out['filter_feats']) == assists and list(out['amplifier_feats']) == assists
        for feats in [out['decoder_feats'], out['output_feats'], *out['filter_feats'].values(),
                      *out['amplifier_feats'].values()]:
            assert [tuple(f.shape) for f in feats] == [(2, *shape) for shape in LEVEL_SHAPES]
    raw = model(inputs, mode='tensor')
    assert list(raw) == list(modalities) and all(m.shape == (2, SIZE, SIZE) for m in raw.values())
    model.aggregator.set_statistics({m: 1.0 for m in modalities}, {m: 0.5 for m in modalities})
    samples = model(inputs, [ADDataSample(), ADDataSample()], mode='predict')
    assert len(samples) == 2
    for sample in samples:
        assert sample.anomaly_map.shape == (SIZE, SIZE) and sample.pred_score.shape == ()
        assert set(sample.branch_maps) == set(modalities) and set(sample.branch_scores) == set(modalities)
        assert all(m.shape == (SIZE, SIZE) for m in sample.branch_maps.values())


def test_batched_teacher_equals_one_forward_per_modality(crd2):
    inputs = make_inputs(crd2.modalities)
    batched = crd2.extract_teacher_feats(inputs)
    for name in crd2.modalities:
        for got, expected in zip(batched[name], crd2.teacher(inputs[name])):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    unequal = dict(rgb=inputs['rgb'], depth=inputs['depth'][:, :, :32, :32])
    assert [tuple(f.shape[-2:]) for f in crd2.extract_teacher_feats(unequal)['depth']] == [(8, 8), (4, 4), (2, 2)]


def test_predict_scores_equal_the_formula():
    crd2 = copy.deepcopy(cached_crd())
    inputs = make_inputs(crd2.modalities, seed=3)
    mean, std = dict(rgb=0.7, depth=1.3), dict(rgb=0.2, depth=0.4)
    crd2.aggregator.set_statistics(mean, std)
    raw = crd2(inputs, mode='tensor')
    smoothed = {name: gaussian_smooth(raw[name], 4.0) for name in raw}
    fused = sum((smoothed[name] - mean[name]) / std[name] for name in raw)
    samples = crd2.predict(inputs)
    assert all(isinstance(sample, ADDataSample) for sample in samples)
    for index, sample in enumerate(samples):
        torch.testing.assert_close(sample.anomaly_map, fused[index])
        torch.testing.assert_close(sample.pred_score, fused[index].max())
        for name in raw:
            torch.testing.assert_close(sample.branch_maps[name], smoothed[name][index])
            torch.testing.assert_close(sample.branch_scores[name], smoothed[name][index].max())


def test_aggregator_state_is_keyed_by_branch_and_errors():
    model = copy.deepcopy(cached_crd(crossmodal_filter=False, crossmodal_amplifier=False))
    state = model.state_dict()
    assert [key for key in state if key.startswith('aggregator.')] == [
        'aggregator.mean_rgb', 'aggregator.std_rgb', 'aggregator.mean_depth', 'aggregator.std_depth',
        'aggregator.fitted']
    assert not any(key.startswith('val_') for key in state)
    assert state['aggregator.mean_rgb'].dtype == torch.float64 and not state['aggregator.fitted']
    with pytest.raises(RuntimeError, match='ValidationStatisticsHook'):
        model.eval().predict(make_inputs(model.modalities))
    model.aggregator.set_statistics(dict(depth=2.0, rgb=1.0), dict(rgb=0.5, depth=0.25))
    state = model.state_dict()
    assert state['aggregator.mean_rgb'].item() == 1.0 and state['aggregator.std_depth'].item() == 0.25
    restored = copy.deepcopy(cached_crd(crossmodal_filter=False, crossmodal_amplifier=False))
    assert not restored.aggregator.is_fitted
    restored.load_state_dict(state)
    assert restored.aggregator.is_fitted and restored.aggregator.std('depth').item() == 0.25
    sum_model = build_crd(crossmodal_filter=False, crossmodal_amplifier=False, aggregator=dict(type='Sum'))
    assert not any(key.startswith('aggregator.') for key in sum_model.state_dict())
    samples = sum_model.eval().predict(make_inputs(sum_model.modalities))
    torch.testing.assert_close(samples[0].anomaly_map, sum(samples[0].branch_maps.values()))
    with pytest.raises(ValueError, match="aggregator.branch_names is the model's branches"):
        build_crd(crossmodal_filter=False, crossmodal_amplifier=False,
                  aggregator=dict(type='Sum', branch_names=('rgb', )))


@pytest.mark.parametrize('modalities', [('rgb', 'depth'), ('rgb', 'depth', 'normals')])
def test_fusion_weights_start_uniform(modalities):
    model = cached_crd(modalities)
    for name in modalities:
        fuser = getattr(model, f'branch_{name}').fuser
        for level in range(3):
            weights = fuser.weights(level)
            torch.testing.assert_close(weights, torch.full((len(modalities), ), 1 / len(modalities)))
            assert weights.sum().item() == pytest.approx(1.0)


def test_switches_module_sets_and_loss_keys():
    inputs = make_inputs(('rgb', 'depth'))
    expected = {
        (True, True): ({'bp', 'ocbe', 'decoder', 'ibp', 'fuser'},
                       ['loss_decoder', 'loss_filter', 'loss_amplifier', 'loss_output']),
        (False, True): ({'ocbe', 'decoder', 'ibp', 'fuser'}, ['loss_decoder', 'loss_amplifier', 'loss_output']),
        (True, False): ({'bp', 'ocbe', 'decoder'}, ['loss_decoder', 'loss_filter']),
        (False, False): ({'ocbe', 'decoder'}, ['loss_decoder']),
    }
    for (with_filter, with_amplifier), (modules, loss_names) in expected.items():
        model = cached_crd(crossmodal_filter=with_filter, crossmodal_amplifier=with_amplifier)
        for name in ('rgb', 'depth'):
            branch = getattr(model, f'branch_{name}')
            assert submodule_names(branch) == modules
            assert branch.ocbe.num_inputs == (2 if with_filter else 1)
            if with_filter:
                assert list(branch.bp) == ['depth' if name == 'rgb' else 'rgb']
        losses = model(inputs, mode='loss')
        assert list(losses) == [f'{m}.{key}' for m in ('rgb', 'depth') for key in loss_names]
        assert all(value.dim() == 0 and value.item() > 0 for value in losses.values())


def test_subset_of_modalities_as_branches():
    model = build_crd(('rgb', 'depth', 'normals'), branches=['depth'])
    assert model.branch_names == ('depth', )
    assert {name for name, _ in model.named_children()} == {
        'data_preprocessor', 'teacher', 'branch_depth', 'distillation_loss', 'aggregator', 'threshold'}
    assert list(model.branch_depth.bp) == ['rgb', 'normals'] and model.branch_depth.ocbe.num_inputs == 3
    assert model.aggregator.branch_names == ('depth', )
    assert list(model(make_inputs(model.modalities), mode='loss')) == [
        'depth.loss_decoder', 'depth.loss_filter', 'depth.loss_amplifier', 'depth.loss_output']
    with pytest.raises(ValueError, match='branches must be distinct modalities'):
        build_crd(branches=['rgb', 'xyz'])


def test_shared_projections_are_one_per_branch():
    model = build_crd(('rgb', 'depth', 'normals'), share_projections=True)
    branch = model.branch_rgb
    assert list(branch.bp) == ['shared'] and list(branch.ibp) == ['shared']
    separate = cached_crd(('rgb', 'depth', 'normals'))
    assert sum(p.numel() for p in separate.branch_rgb.bp.parameters()) == 2 * sum(
        p.numel() for p in branch.bp.parameters())
    inputs = make_inputs(model.modalities)
    feats = model.extract_teacher_feats(inputs)
    model.eval()
    with torch.no_grad():
        out = branch(feats['rgb'], dict(depth=feats['depth'], normals=feats['normals']))
        alone = branch.bp['shared'](feats['normals'])
    for got, expected in zip(out['filter_feats']['normals'], alone):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('switches, depends', [
    (dict(crossmodal_filter=False, crossmodal_amplifier=False), False),
    (dict(crossmodal_filter=False, crossmodal_amplifier=True), True),
    (dict(crossmodal_filter=True, crossmodal_amplifier=False), True),
])
def test_crossmodal_paths(switches, depends):
    model = cached_crd(**switches)
    inputs = make_inputs(model.modalities)
    perturbed = dict(inputs, depth=inputs['depth'] + torch.randn_like(inputs['depth']))
    before, after = model(inputs, mode='tensor'), model(perturbed, mode='tensor')
    assert not torch.equal(before['depth'], after['depth'])
    assert torch.equal(before['rgb'], after['rgb']) is not depends


def train_step_checks(model, optim_wrapper, runs_through):
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    sets = {name: {id(p) for group in optim_wrapper[name].optimizer.param_groups for p in group['params']}
            for name in model.branch_names}
    assert set.union(*sets.values()) == trainable
    assert sum(len(s) for s in sets.values()) == len(trainable)  # disjoint
    for name in model.branch_names:
        assert sets[name] == {id(p) for p in getattr(model, f'branch_{name}').parameters()}
    teacher_state = copy.deepcopy(model.teacher.state_dict())
    branch_params = {name: [p.detach().clone() for p in getattr(model, f'branch_{name}').parameters()]
                     for name in model.branch_names}
    runs_through.train()
    log_vars = runs_through.train_step(make_batch(model.modalities, batch=1), optim_wrapper)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_state[key]), key
    for name in model.branch_names:
        after = list(getattr(model, f'branch_{name}').parameters())
        assert all(not torch.equal(b, a) for b, a in zip(branch_params[name], after)), name
    return log_vars


@pytest.mark.parametrize('modalities', [('rgb', 'depth'), ('rgb', 'depth', 'normals')])
def test_train_step_updates_each_branch_with_its_optimizer(modalities):
    model = copy.deepcopy(cached_crd(modalities))
    optim_wrapper = build_optim_wrapper(model, OPTIM)
    log_vars = train_step_checks(model, optim_wrapper, model)
    branch_totals = [log_vars[f'{name}.loss'] for name in modalities]
    assert list(log_vars)[0] == 'loss'
    torch.testing.assert_close(log_vars['loss'], sum(branch_totals))
    torch.testing.assert_close(log_vars['rgb.loss'], sum(log_vars[f'rgb.{key}'] for key in (
        'loss_decoder', 'loss_filter', 'loss_amplifier', 'loss_output')))
    with pytest.raises(TypeError, match='OptimWrapperDict with one entry per branch'):
        model.train_step(make_batch(modalities), OptimWrapperDict(rgb=optim_wrapper['rgb']))
    with pytest.raises(TypeError, match='BranchOptimWrapperConstructor'):
        model.train_step(make_batch(modalities), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_train_step_with_separately_wrapped_branches(single_process_group):
    model = copy.deepcopy(cached_crd())
    wrapped = MMSeparateDistributedDataParallel(model)
    assert type(model._modules['branch_rgb']).__name__ == 'MMDistributedDataParallel'
    assert type(model._modules['teacher']).__name__ == 'TimmEncoder'
    optim_wrapper = build_optim_wrapper(wrapped, OPTIM)
    log_vars = train_step_checks(model, optim_wrapper, wrapped)
    assert set(log_vars) >= {'loss', 'rgb.loss', 'depth.loss'}
    wrapped.eval()
    expected = {name: getattr(model, f'branch_{name}').module for name in model.branch_names}
    for name in model.branch_names:  # scoring bypasses the DDP wrappers (no collective per batch)
        model._modules[f'branch_{name}'].forward = None
    raw = wrapped.module(make_inputs(model.modalities), mode='tensor')
    assert raw['rgb'].shape == (2, SIZE, SIZE)
    assert all(not module.training for module in expected.values())


def test_construction_errors():
    with pytest.raises(ValueError, match='at least two modalities'):
        build_crd(('rgb', ))
    single = build_crd(('rgb', ), crossmodal_filter=False, crossmodal_amplifier=False)
    assert submodule_names(single.branch_rgb) == {'ocbe', 'decoder'}
    with pytest.raises(ValueError, match='modalities must be unique'):
        build_crd(('rgb', 'rgb'))
    with pytest.raises(ValueError, match=r"no mean/std for modalities \['normals'\]"):
        build_crd(('rgb', 'normals'), data_preprocessor=dict(type='ADDataPreprocessor'))
    with pytest.raises(ValueError, match=r'bottleneck.in_channels is derived from the teacher \(\(64, 128, 256\)\)'):
        build_crd(bottleneck=dict(type='BottleneckProjection', in_channels=[1, 2, 3]))
    model = cached_crd(crossmodal_filter=False, crossmodal_amplifier=False)
    with pytest.raises(KeyError, match=r"missing \['depth'\]"):
        model(dict(rgb=torch.zeros(1, 3, SIZE, SIZE)), mode='tensor')
    with pytest.raises(ValueError, match="mode must be 'loss', 'predict' or 'tensor'"):
        model(make_inputs(model.modalities), mode='features')
    with pytest.raises(ValueError, match='amplifier` and `fuser` go together'):
        CRDBranch('rgb', ['depth'], ocbe=dict(), decoder=dict(), amplifier=dict(type='InvertedBottleneckProjection'))


def test_teacher_stays_frozen_and_in_eval_mode():
    model = copy.deepcopy(cached_crd(crossmodal_filter=False, crossmodal_amplifier=False))
    model.train()
    assert not model.teacher.training and model.branch_rgb.training
    assert not any(p.requires_grad for p in model.teacher.parameters())


def test_init_weights_reaches_every_part_and_spares_the_teacher():
    model = copy.deepcopy(cached_crd())
    teacher_state = copy.deepcopy(model.teacher.state_dict())
    bp_weight = model.branch_rgb.bp['depth'].projections[0][0][0].weight.detach().clone()
    model.init_weights()
    for name, module in model.branch_rgb.named_modules():
        if isinstance(module, BaseModule):
            assert module.is_init, name
    assert not torch.equal(bp_weight, model.branch_rgb.bp['depth'].projections[0][0][0].weight)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_state[key]), key
    torch.testing.assert_close(model.branch_rgb.fuser.weights(0), torch.tensor([0.5, 0.5]))
