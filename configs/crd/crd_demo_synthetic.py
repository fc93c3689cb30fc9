# CPU-sized CRD demo on the built-in synthetic MVTec 3D-AD-format data (`make demo` generates it).
# The teacher is a RANDOMLY INITIALISED resnet18: no ImageNet weights can be downloaded offline. Its numbers show
# that the pipeline works end to end, not what CRD reaches with a pretrained teacher.
_base_ = [
    '../_base_/datasets/mvtec3d_rgbd.py',
    '../_base_/models/crd_wrn50.py',
    '../_base_/schedules/crd_adam_200e.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/synthetic_mvtec3d'
category = 'synthetic'
image_size = 96
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

model = dict(teacher=dict(model_name='resnet18', pretrained=False))
train_cfg = dict(max_epochs=30)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5))
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader'),
    dict(type='AnomalyMapVisualizationHook', out_dir='heatmaps', max_samples=64),
]
randomness = dict(seed=0, deterministic=False)
