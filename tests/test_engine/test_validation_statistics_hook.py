import os
import socket
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseDataPreprocessor
from mmengine.registry import DefaultScope
from mmengine.runner import EpochBasedTrainLoop, Runner
from torch import nn
from torch.utils.data import DataLoader, Dataset

import mmad.engine.optimizers  # noqa: F401 (registers BranchOptimWrapperConstructor)
from mmad.engine.hooks import ValidationStatisticsHook, fit_aggregator
from mmad.models.aggregators import NormalizedSum
from mmad.registry import DATASETS, HOOKS, MODELS
from mmad.structures import ADDataSample
from mmad.utils import load_from_local_safely
from mmad.utils.model_checkpoint import load_model_checkpoint

SIZE = 64
NORMALISATION = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


@DATASETS.register_module(name='ToyMultimodalDatasetForHookTests', force=True)
class ToyMultimodalDataset(Dataset):
    """Samples as PackADInputs writes them: rgb (3, S, S) in 0-255, depth (1, S, S) in [0, 1]."""

    def __init__(self, num_samples, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.rgb = torch.rand(num_samples, 3, SIZE, SIZE, generator=generator) * 255
        self.depth = torch.rand(num_samples, 1, SIZE, SIZE, generator=generator)

    def __len__(self):
        return len(self.rgb)

    def __getitem__(self, index):
        return dict(inputs=dict(rgb=self.rgb[index], depth=self.depth[index]),
                    data_samples=ADDataSample(metainfo=dict(sample_idx=index)))


class ToyMapModel(nn.Module):
    """Cheap stand-in exposing what the hook uses: data_preprocessor, raw_branch_maps, aggregator."""

    branch_names = ('rgb', 'depth')

    def __init__(self):
        super().__init__()
        self.data_preprocessor = BaseDataPreprocessor()
        self.aggregator = NormalizedSum(self.branch_names)

    def raw_branch_maps(self, inputs):
        return {name: torch.stack(inputs[name]).mean(dim=1) ** 2 for name in self.branch_names}


def build_crd(**kwargs):
    """A small CRD: resnet18 layers 1-2 (random weights) as the teacher, so students of two levels."""
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='CRD', modalities=('rgb', 'depth'),
        teacher=dict(type='TimmEncoder', model_name='resnet18', strides=(4, 8)),
        crossmodal_filter=False, crossmodal_amplifier=True,
        data_preprocessor=dict(type='ADDataPreprocessor', modalities=dict(rgb=NORMALISATION, depth=NORMALISATION)),
        **kwargs))


def numpy_statistics(model, dataset):
    """Per-branch mean/std over every pixel of every raw map, one sample at a time, in numpy float64."""
    pixels = {name: [] for name in model.branch_names}
    with torch.no_grad():
        for index in range(len(dataset)):
            data = model.data_preprocessor(pseudo_collate([dataset[index]]), False)
            for name, raw in model.raw_branch_maps(data['inputs']).items():
                pixels[name].append(raw.numpy().astype(np.float64).ravel())
    values = {name: np.concatenate(chunks) for name, chunks in pixels.items()}
    return ({name: v.mean() for name, v in values.items()}, {name: v.std() for name, v in values.items()})


@pytest.fixture(autouse=True)
def mmad_scope():
    with DefaultScope.overwrite_default_scope('mmad'):
        yield


def test_statistics_equal_numpy_over_all_pixels(capsys):
    model = build_crd()
    model.train()
    dataset = ToyMultimodalDataset(5)
    loader = DataLoader(dataset, batch_size=2, collate_fn=pseudo_collate)
    fitted = fit_aggregator(model, loader, show_progress=True)
    assert '3/3' in capsys.readouterr().out  # progress over the 3 batches
    assert model.training  # mode restored
    model.eval()
    expected_mean, expected_std = numpy_statistics(model, dataset)
    for name in ('rgb', 'depth'):
        assert fitted[name]['mean'] == pytest.approx(expected_mean[name], rel=1e-5)
        assert fitted[name]['std'] == pytest.approx(expected_std[name], rel=1e-4)
        assert model.aggregator.mean(name).item() == fitted[name]['mean'] and fitted[name]['std'] > 0
    with pytest.raises(ValueError, match='no validation map was seen'):
        fit_aggregator(model, DataLoader(ToyMultimodalDataset(0), collate_fn=pseudo_collate))


def train_runner(tmp_path, val_stats_root=None, **model_kwargs):
    stats_dataset = dict(type='ToyMultimodalDatasetForHookTests', num_samples=3, seed=2)
    if val_stats_root is not None:
        stats_dataset = dict(type='MVTec3DDataset', data_root=val_stats_root, category='bagel', split='validation',
                             pipeline=[])
    hook = HOOKS.build(dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False))
    return Runner(
        model=build_crd(**model_kwargs), work_dir=str(tmp_path), default_scope='mmad',
        train_dataloader=dict(dataset=dict(type='ToyMultimodalDatasetForHookTests', num_samples=2, seed=1),
                              batch_size=2, sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(constructor='BranchOptimWrapperConstructor', optimizer=dict(type='Adam', lr=1e-3)),
        default_hooks=dict(logger=None, checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[dict(type='SafeCheckpointHook'), hook], log_level='WARNING',
        cfg=dict(val_stats_dataloader=dict(batch_size=2, dataset=stats_dataset,
                                           sampler=dict(type='DefaultSampler', shuffle=True)))), hook


def test_runner_fits_after_last_epoch_and_checkpoint_holds_them(tmp_path):
    val_set = ToyMultimodalDataset(3, seed=2)
    runner, hook = train_runner(tmp_path)
    with pytest.warns(UserWarning, match='replaces the sampler'):
        runner.train()
    model = runner.model
    expected_mean, expected_std = numpy_statistics(model.eval(), val_set)
    first = load_from_local_safely(str(tmp_path / 'epoch_1.pth'))['state_dict']
    last = load_from_local_safely(str(tmp_path / 'epoch_2.pth'))
    assert not first['aggregator.fitted']  # saved after weights changed, before any fit
    state = last['state_dict']
    assert bool(state['aggregator.fitted']) and state['aggregator.mean_rgb'].dtype == torch.float64
    for name in ('rgb', 'depth'):
        assert state[f'aggregator.mean_{name}'].item() == pytest.approx(expected_mean[name], rel=1e-5)
        assert state[f'aggregator.std_{name}'].item() == pytest.approx(expected_std[name], rel=1e-4)
    assert last['meta']['epoch'] == 2 and set(last['optimizer']) == {'rgb', 'depth'}  # the rest kept on re-save
    assert [name for name in os.listdir(tmp_path) if name.endswith('.tmp')] == []

    model.aggregator.reset()
    with pytest.warns(UserWarning, match='NormalizedSum is not fitted'):
        hook.before_test(runner)
    assert model.aggregator.is_fitted
    assert model.aggregator.mean('rgb').item() == pytest.approx(state['aggregator.mean_rgb'].item(), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        hook.before_test(runner)  # statistics present: nothing to do


def test_failing_statistics_keep_the_final_checkpoint(tmp_path):
    """Issue 8 case 7: a wrong validation data root is found after the last epoch; the training is saved."""
    runner, _ = train_runner(tmp_path / 'work', val_stats_root=str(tmp_path / 'no_such_root'))
    with pytest.raises(Exception, match='no_such_root'):
        runner.train()
    checkpoint = load_from_local_safely(str(tmp_path / 'work' / 'epoch_2.pth'))
    assert checkpoint['meta']['epoch'] == 2 and not checkpoint['state_dict']['aggregator.fitted']
    fresh = build_crd()
    load_model_checkpoint(fresh, str(tmp_path / 'work' / 'epoch_2.pth'))
    trained = runner.model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in fresh.state_dict().items())


def test_nothing_to_fit_skips_the_work(tmp_path):
    logged = []
    runner = SimpleNamespace(model=build_crd(aggregator=dict(type='Sum')), cfg=dict(),
                             logger=SimpleNamespace(info=None, warning=logged.append))
    # the config has no such entry; no threshold rule: nothing to fit
    hook = ValidationStatisticsHook(dataloader='val_stats_dataloader', threshold=None)
    assert hook.fit(runner) == {} and hook.fit_threshold(runner) is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        hook.before_test(runner)
        hook.before_train_iter(runner, 0)
    assert hook._dataloader is None
    assert len(logged) == 1 and 'decisions are off for test' in logged[0]


def fake_runner(epoch, max_epochs=5, val_interval=2, val_begin=1, with_val=True):
    loop = object.__new__(EpochBasedTrainLoop)
    loop._max_epochs, loop.val_interval, loop.val_begin = max_epochs, val_interval, val_begin
    return SimpleNamespace(epoch=epoch, max_epochs=max_epochs, train_loop=loop,
                           val_loop=object() if with_val else None)


@pytest.mark.parametrize('with_val, expected_epochs', [(True, [1, 3, 4]), (False, [4])])
def test_runs_after_last_epoch_and_before_each_validation(with_val, expected_epochs):
    hook = ValidationStatisticsHook(dataloader=dict(), show_progress=False)
    computed = []
    hook._fit_and_resave = lambda runner: computed.append(runner.epoch)
    for epoch in range(5):
        hook.after_train_epoch(fake_runner(epoch, with_val=with_val))
    assert computed == expected_epochs


def test_dataloader_errors():
    hook = ValidationStatisticsHook(dataloader='missing_dataloader')
    with pytest.raises(KeyError, match="no entry 'missing_dataloader'"):
        hook._get_dataloader(SimpleNamespace(cfg=dict()))


def distributed_worker(rank, world_size, port, result_dir):
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                         world_size=world_size)
    results = {}
    for num_samples in (5, 1):  # with one sample, rank 1 has none but still joins the all-reduce
        hook = ValidationStatisticsHook(
            dict(batch_size=2, num_workers=0,
                 dataset=dict(type='ToyMultimodalDatasetForHookTests', num_samples=num_samples)),
            show_progress=False)
        model = ToyMapModel()
        runner = SimpleNamespace(model=model, logger=SimpleNamespace(info=lambda message: None))
        with DefaultScope.overwrite_default_scope('mmad'):
            fitted = hook.fit(runner)
        results[num_samples] = dict(mean={name: values['mean'] for name, values in fitted.items()},
                                    std={name: values['std'] for name, values in fitted.items()},
                                    seen=len(hook._get_dataloader(runner).sampler))
    torch.save(results, os.path.join(result_dir, f'rank{rank}.pth'))
    torch.distributed.destroy_process_group()


def test_distributed_statistics_count_every_sample_once(tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    mp.spawn(distributed_worker, args=(2, port, str(tmp_path)), nprocs=2)
    results = [torch.load(tmp_path / f'rank{rank}.pth', weights_only=False) for rank in range(2)]
    for num_samples, seen in ((5, [3, 2]), (1, [1, 0])):  # no padding: every sample counts once
        assert [r[num_samples]['seen'] for r in results] == seen
        expected_mean, expected_std = numpy_statistics(ToyMapModel(), ToyMultimodalDataset(num_samples))
        for result in results:
            for name in ('rgb', 'depth'):
                assert result[num_samples]['mean'][name] == pytest.approx(expected_mean[name], rel=1e-6)
                assert result[num_samples]['std'][name] == pytest.approx(expected_std[name], rel=1e-6)
