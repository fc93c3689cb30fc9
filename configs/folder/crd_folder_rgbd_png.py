# CRD (RGB + depth) on your own folders, depth read from single-channel 16-bit PNG files (a depth camera's output;
# 0 = missing, any unit): LoadDepthFromFile scales each map's valid range to (0.1, 0.9), as the xyz depth.
_base_ = ['./crd_folder_rgbd.py']
folders = dict(
    modalities=dict(_delete_=True, rgb='*.jpg', depth='*_depth.png'),
    normal_dir='train_good',
    test_normal_dir='test_good',
    abnormal_dirs=('crack', 'color'),
    mask_dirs=dict(crack='masks/crack/*_mask.png'),
    holdout_fraction=0.2,
    holdout_seed=0,
)
image_size = 256
modalities = ('rgb', 'depth')

train_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', 'depth')),
    dict(type='PackADInputs', modalities=modalities),
]
test_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadMaskFromFile'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', 'depth')),
    dict(type='ResizeMask', size=image_size),
    dict(type='PackADInputs', modalities=modalities),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, **folders))
val_stats_dataloader = dict(dataset=dict(pipeline=test_pipeline, **folders))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline, **folders))
