"""End to end: generate MVTec 3D-AD-format data, train the demo CRD, test its checkpoint, check what the demo shows.

The demo config as it is (pretrained EfficientNet-Lite0 teacher, its schedule and data sizes) with fixed seeds and
threads, on another draw of the synthetic data (seed 1) than the one the demo was calibrated on (seed 0; the claims
held for each of 3 model seeds there, docs/crd_synthetic_calibration.md).
"""
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmad.datasets.synthetic import make_synthetic_mvtec3d
from mmad.utils import load_from_local_safely, read_config, register_all_modules, to_safe_checkpoint

pytestmark = pytest.mark.slow  # trains the demo config (30 epochs)

CONFIG = str(Path(__file__).resolve().parents[2] / 'configs' / 'crd' / 'crd_demo_synthetic.py')
DATA_SEED = 1
MODEL_SEED = 0
METRIC_NAMES = {'I-AUROC', 'I-AP', 'P-AUROC', 'P-AP', 'AUPRO@0.3'}


def _config(data_root, work_dir, checkpoint=None):
    cfg = read_config(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=MODEL_SEED, deterministic=True)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=cfg.train_cfg.max_epochs, save_last=True)
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
    # One intra-op thread for this module: reproducible, the calibration's setting, and on a shared machine far
    # faster than two threads (whose spin-waiting made one training step 20x slower under load here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('e2e')
    cfg = Config.fromfile(CONFIG)
    # The demo's data sizes and the generator's default defects, another draw.
    make_synthetic_mvtec3d(root / 'data', category='synthetic', **dict(cfg.demo_data, seed=DATA_SEED))
    train_dir = root / 'train'
    Runner.from_cfg(_config(root / 'data', train_dir)).train()
    checkpoint = train_dir / f'epoch_{cfg.train_cfg.max_epochs}.pth'
    test_dir = root / 'test'
    Runner.from_cfg(_config(root / 'data', test_dir, checkpoint)).test()
    with open(test_dir / 'metrics.json') as f:
        metrics = json.load(f)
    yield dict(root=root, checkpoint=checkpoint, metrics=metrics)
    torch.set_num_threads(threads)


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


def test_demo_claims(trained):
    auroc = {output: {defect: values['I-AUROC'] for defect, values in trained['metrics'][output].items()}
             for output in ('fused', 'rgb', 'depth')}
    print('I-AUROC', auroc)
    # Geometry-only dents: the depth branch finds them, the rgb branch cannot see them.
    assert auroc['depth']['dent'] >= 0.80
    assert auroc['depth']['dent'] > auroc['rgb']['dent']
    # Colour-only stains: the rgb branch finds them, the depth branch cannot see them.
    assert auroc['rgb']['color'] >= 0.95
    assert auroc['rgb']['color'] > auroc['depth']['color']
    # Fusion does not lose against the better branch on all defects.
    assert auroc['fused']['all'] >= max(auroc['rgb']['all'], auroc['depth']['all']) - 0.01


def test_checkpoint_carries_inference_metadata(trained):
    checkpoint = load_from_local_safely(str(trained['checkpoint']))
    info = checkpoint['meta']['mmad']
    teacher = Config.fromfile(CONFIG).model.teacher  # its weights file is hash-checked before loading
    assert info == dict(image_size=96, modalities=['rgb', 'depth'], branch_names=['rgb', 'depth'],
                        teacher=dict(model_name=teacher.model_name, weights_sha256=teacher.checkpoint_sha256))
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
