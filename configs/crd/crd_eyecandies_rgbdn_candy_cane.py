# CRD with three branches (RGB + depth + the dataset's normal maps) on Eyecandies "CandyCane"; WRN50 teacher,
# 256x256, batch 16, 100 epochs. share_projections=True: one BP and one IBP per branch for its two assists.
_base_ = [
    '../_base_/datasets/eyecandies_rgbdn.py',
    '../_base_/models/crd_wrn50.py',
    '../_base_/schedules/crd_adam_100e.py',
    '../_base_/default_runtime.py',
]
category = 'CandyCane'
model = dict(
    modalities=('rgb', 'depth', 'normals'),
    share_projections=True,
    data_preprocessor=dict(modalities=dict(normals=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))),
)
train_dataloader = dict(dataset=dict(category=category))
val_stats_dataloader = dict(dataset=dict(category=category))
test_dataloader = dict(dataset=dict(category=category))
