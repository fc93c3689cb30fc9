# Reverse distillation on rgb images only, from your own folders (no 3D data): one branch, so no crossmodal
# filter or amplifier. Layout: edit `folders` as in crd_folder_rgbd.py (docs/tutorials/own_data.md).
_base_ = ['./crd_folder_rgbd.py']
folders = dict(
    modalities=dict(_delete_=True, rgb='*.jpg'),
    normal_dir='train_good',
    test_normal_dir='test_good',
    abnormal_dirs=('crack', 'color'),
    mask_dirs=dict(crack='masks/crack/*_mask.png'),
    holdout_fraction=0.2,
    holdout_seed=0,
)
image_size = 256
modalities = ('rgb', )

train_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='PackADInputs', modalities=modalities),
]
test_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadMaskFromFile'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='ResizeMask', size=image_size),
    dict(type='PackADInputs', modalities=modalities),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, **folders))
val_stats_dataloader = dict(dataset=dict(pipeline=test_pipeline, **folders))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline, **folders))

model = dict(
    modalities=modalities,
    crossmodal_filter=False,
    crossmodal_amplifier=False,
    data_preprocessor=dict(
        modalities=dict(_delete_=True, rgb=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]))),
)
