"""A tiny trained CRD for the inference tests: synthetic MVTec 3D-AD data at 48x64, resnet18 (random) at 64 px.

``train_tiny_model(root)`` generates the data, trains one epoch with the project's hooks (statistics and the
quantile threshold fitted on the validation split, the checkpoint re-saved with them) and returns the paths.
"""
from pathlib import Path

import torch
from mmengine.runner import Runner

from mmad.datasets.synthetic import make_synthetic_mvtec3d
from mmad.utils import read_config, register_all_modules

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
HEIGHT, WIDTH = 48, 64
SIZE = 64
CONFIG_TEXT = f"""
_base_ = [
    '{CONFIGS}/_base_/datasets/mvtec3d_rgbd.py',
    '{CONFIGS}/_base_/models/crd_wrn50.py',
    '{CONFIGS}/_base_/schedules/crd_adam_100e.py',
    '{CONFIGS}/_base_/default_runtime.py',
]
data_root = '{{data_root}}'
category = 'synthetic'
modalities = ('rgb', 'depth')
train_pipeline = [
    dict(type='LoadRGBFromFile'), dict(type='LoadXYZFromFile'), dict(type='XYZToDepth', size={SIZE}),
    dict(type='ResizeImage', size={SIZE}, keys=('rgb',)), dict(type='PackADInputs', modalities=modalities)]
test_pipeline = [
    dict(type='LoadRGBFromFile'), dict(type='LoadXYZFromFile'), dict(type='LoadMaskFromFile'),
    dict(type='XYZToDepth', size={SIZE}), dict(type='ResizeImage', size={SIZE}, keys=('rgb',)),
    dict(type='ResizeMask', size={SIZE}),
    dict(type='PackADInputs', modalities=modalities)]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, category=category, pipeline=train_pipeline))
val_stats_dataloader = dict(batch_size=4, num_workers=0,
                            dataset=dict(data_root=data_root, category=category, pipeline=test_pipeline))
test_dataloader = dict(batch_size=4, num_workers=0,
                       dataset=dict(data_root=data_root, category=category, pipeline=test_pipeline))
model = dict(teacher=dict(model_name='resnet18', pretrained=False))
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False),
]
randomness = dict(seed=0)
log_level = 'INFO'
"""


def write_config(path: Path, data_root: Path) -> Path:
    """Write the tiny config reading ``data_root``."""
    path.write_text(CONFIG_TEXT.replace('{data_root}', str(data_root)))
    return path


def train_tiny_model(root: Path) -> dict:
    """Generate data under ``root/data``, train one epoch into ``root/work``.

    Returns:
        ``dict(config=..., checkpoint=..., data_root=..., category_dir=..., work_dir=...)`` (paths).
    """
    register_all_modules()
    torch.manual_seed(0)
    data_root = root / 'data'
    make_synthetic_mvtec3d(data_root, category='synthetic', height=HEIGHT, width=WIDTH, num_train=4, num_val=4,
                           num_test_per_defect=2, seed=3)
    config = write_config(root / 'tiny_crd.py', data_root)
    cfg = read_config(config)
    cfg.work_dir = str(root / 'work')
    Runner.from_cfg(cfg).train()
    return dict(config=config, checkpoint=root / 'work' / 'epoch_1.pth', data_root=data_root,
                category_dir=data_root / 'synthetic', work_dir=root / 'work')
