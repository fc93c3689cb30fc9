# Base of the CRD ablations (paper Tab. 3-7) and its full-model row: rgb + depth, crossmodal filter (CF) and
# amplifier (CA) on, BP to stride 32, IBP expansion 2, NormalizedSum, the pretrained EfficientNet-Lite0 CPU teacher.
# Every other row of configs/crd_ablations/ is this file plus a few overrides. Any category runs with
#   python tools/analysis_tools/run_ablations.py configs/crd_ablations/*.py --data-root DATA --category CAT
# The synthetic-data settings below (64x64 input, 10 epochs) make the whole set fit on a CPU; for real
# MVTec 3D-AD set image_size = 256 and the paper's schedule ('../_base_/schedules/crd_adam_200e.py' as is).
_base_ = [
    '../_base_/datasets/mvtec3d_rgbd.py',
    '../_base_/models/crd_effnet_lite0.py',
    '../_base_/schedules/crd_adam_200e.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/synthetic_mvtec3d'
category = 'synthetic'
image_size = 64
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
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, category=category, pipeline=train_pipeline))
val_stats_dataloader = dict(
    batch_size=8, num_workers=0,
    dataset=dict(data_root=data_root, category=category, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0,
    dataset=dict(data_root=data_root, category=category, pipeline=test_pipeline))

train_cfg = dict(max_epochs=10)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=10))
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False),
]
randomness = dict(seed=0, deterministic=False)
