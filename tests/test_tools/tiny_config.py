"""The tiny CRD config of the tool tests, the size of its synthetic data, and the work dir of an earlier run."""
from __future__ import annotations

from pathlib import Path

from process_helpers import REPO

# 8 train, 3 validation and 3 + 3 + 3 test samples (good, color, dent): an odd test count.
NUM_TRAIN, NUM_VAL, NUM_TEST = 8, 3, 9

TINY_CONFIG = """
_base_ = ['{base}']
custom_imports = dict(imports=['tool_test_plugins'], allow_failed_imports=False)
data_root = '{data_root}'
category = '{category}'
image_size = 32
modalities = ('rgb', 'depth')
train_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadXYZFromFile'),
    dict(type='XYZToDepth', size=image_size),
    dict(type='ResizeImage', size=image_size, keys=('rgb',)),
    dict(type='PackADInputs', modalities=modalities),
]
test_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadXYZFromFile'),
    dict(type='LoadMaskFromFile'),
    dict(type='XYZToDepth', size=image_size),
    dict(type='ResizeImage', size=image_size, keys=('rgb',)),
    dict(type='ResizeMask', size=image_size),
    dict(type='PackADInputs', modalities=modalities),
]
train_dataloader = dict(batch_size=2, num_workers=0,
                        dataset=dict(data_root=data_root, category=category, pipeline=train_pipeline))
val_stats_dataloader = dict(batch_size=2, num_workers=0,
                            dataset=dict(data_root=data_root, category=category, pipeline=test_pipeline))
test_dataloader = dict(batch_size=2, num_workers=0,
                       dataset=dict(data_root=data_root, category=category, pipeline=test_pipeline))
model = dict(teacher=dict(strides=(4, 8)), bottleneck=dict(bottleneck_stride=16))
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False),
{extra_hooks}]
randomness = dict(seed=0, deterministic=True)
{extra}
"""


def write_tiny_config(path: Path, data_root: Path, extra_hooks: tuple[str, ...] = (), extra: str = '',
                      category: str = 'synthetic') -> Path:
    """Write the tiny CRD config (random resnet18 layers 1-2, 32x32, batch 2, 2 epochs) with extra hooks and lines."""
    hooks = ''.join(f'    {hook},\n' for hook in extra_hooks)
    base = REPO / 'configs' / 'crd' / 'crd_demo_synthetic_random_teacher.py'
    path.write_text(TINY_CONFIG.format(base=base, data_root=data_root, category=category, extra_hooks=hooks,
                                       extra=extra))
    return path


def earlier_run(work_dir: Path) -> Path:
    """Make ``work_dir`` hold the checkpoints of an earlier run (placeholder bytes) and its timestamped log folder."""
    work_dir.mkdir()
    for name in ('epoch_2.pth', 'epoch_3.pth'):
        (work_dir / name).write_bytes(b'earlier run')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_3.pth'))
    (work_dir / '20260101_000000').mkdir()
    return work_dir
