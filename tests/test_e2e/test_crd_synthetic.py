"""End to end: generate MVTec 3D-AD-format data, train the demo CRD, test its checkpoint, check the metrics.

Fixed seeds and threads, the demo schedule (30 epochs) on 40 training samples (about two minutes on 2 cores).
Thresholds were calibrated on 3 model seeds (docs/crd_synthetic_calibration.md) and keep a margin below the worst.
"""
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmad.datasets.synthetic import make_synthetic_mvtec3d
from mmad.utils import load_from_local_safely, register_all_modules, to_safe_checkpoint

CONFIG = str(Path(__file__).resolve().parents[2] / 'configs' / 'crd' / 'crd_demo_synthetic.py')
SEED = 0
EPOCHS = 30
METRIC_NAMES = {'I-AUROC', 'I-AP', 'P-AUROC', 'P-AP', 'AUPRO@0.3'}


def _config(data_root, work_dir, checkpoint=None):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=SEED, deterministic=True)
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=EPOCHS, save_last=True)
    cfg.custom_hooks = [dict(type='SafeCheckpointHook'),
                        dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False)]
    for key in ('train_dataloader', 'val_stats_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = str(data_root)
    cfg.test_evaluator.out_dir = str(work_dir)
    if checkpoint is not None:
        cfg.load_from = str(checkpoint)
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    register_all_modules()
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp('e2e')
    # The generator's default defects; >= 10 good and >= 10 per defect type in the test split.
    make_synthetic_mvtec3d(root / 'data', category='synthetic', height=128, width=128, num_train=40, num_val=10,
                           num_test_per_defect=10, seed=1)
    train_dir = root / 'train'
    Runner.from_cfg(_config(root / 'data', train_dir)).train()
    checkpoint = train_dir / f'epoch_{EPOCHS}.pth'
    test_dir = root / 'test'
    Runner.from_cfg(_config(root / 'data', test_dir, checkpoint)).test()
    with open(test_dir / 'metrics.json') as f:
        metrics = json.load(f)
    return dict(root=root, checkpoint=checkpoint, metrics=metrics)


def test_metrics_json_layout(trained):
    metrics = trained['metrics']
    assert list(metrics) == ['fused', 'rgb', 'depth', 'notes', 'run']
    assert metrics['run']['checkpoint'] == str(trained['checkpoint'])
    assert metrics['run']['dataset'] == dict(dataset_name='MVTec 3D-AD', category='synthetic', split='test')
    for per_defect in (metrics[source] for source in ('fused', 'rgb', 'depth')):
        assert set(per_defect) == {'all', 'color', 'dent', 'crack'}
        for values in per_defect.values():
            assert set(values) == METRIC_NAMES
            assert all(0.0 <= v <= 1.0 for v in values.values())


def test_detection_quality(trained):
    metrics = trained['metrics']
    print('fused/all I-AUROC', metrics['fused']['all']['I-AUROC'], 'rgb/color', metrics['rgb']['color']['I-AUROC'],
          'depth/color', metrics['depth']['color']['I-AUROC'], 'depth/dent', metrics['depth']['dent']['I-AUROC'])
    assert metrics['fused']['all']['I-AUROC'] >= 0.65
    assert metrics['rgb']['color']['I-AUROC'] >= 0.85
    assert metrics['rgb']['color']['I-AUROC'] > metrics['depth']['color']['I-AUROC']


def test_checkpoint_carries_inference_metadata(trained):
    checkpoint = load_from_local_safely(str(trained['checkpoint']))
    info = checkpoint['meta']['mmad']
    assert info == dict(image_size=96, modalities=['rgb', 'depth'], branch_names=['rgb', 'depth'],
                        teacher=dict(model_name='resnet18', weights_sha256=None))
    assert "image_size = 96" in checkpoint['meta']['cfg']
    state = checkpoint['state_dict']
    assert bool(state['aggregator.fitted'])
    assert all(state[f'aggregator.{key}_{name}'].dtype == torch.float64 for key in ('mean', 'std')
               for name in ('rgb', 'depth'))
    assert state['aggregator.std_rgb'] > 0 and state['aggregator.std_depth'] > 0


def test_checkpoint_without_statistics_gets_them_at_test_time(trained, recwarn):
    checkpoint = load_from_local_safely(str(trained['checkpoint']))
    state = checkpoint['state_dict']
    expected = {key: state[key].clone() for key in state if key.startswith(('aggregator.mean_', 'aggregator.std_'))}
    state['aggregator.fitted'] = torch.tensor(False)
    for key in expected:
        state[key].zero_()
    stripped = trained['root'] / 'no_stats.pth'
    torch.save(to_safe_checkpoint(checkpoint), stripped)
    work_dir = trained['root'] / 'test_no_stats'
    runner = Runner.from_cfg(_config(trained['root'] / 'data', work_dir, stripped))
    runner.test()
    assert any('no validation statistics' in str(w.message) for w in recwarn)
    for key, value in expected.items():
        torch.testing.assert_close(runner.model.state_dict()[key], value, rtol=1e-6, atol=1e-9)
    with open(work_dir / 'metrics.json') as f:
        metrics = json.load(f)
    assert metrics['fused']['all']['I-AUROC'] == pytest.approx(trained['metrics']['fused']['all']['I-AUROC'],
                                                               abs=1e-6)
