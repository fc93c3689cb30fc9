# CRD with three branches (RGB + depth + normals) on MVTec 3D-AD "bagel": one plane fit per sample, the authors'
# depth and its Sobel normals; WRN50 teacher, 256x256, batch 16, 200 epochs. share_projections=True: each branch
# keeps one BP and one IBP for its two assists (654,391,323 trainable parameters instead of 887,493,147).
_base_ = [
    '../_base_/datasets/mvtec3d_rgbdn.py',
    '../_base_/models/crd_wrn50.py',
    '../_base_/schedules/crd_adam_200e.py',
    '../_base_/default_runtime.py',
]
category = 'bagel'
model = dict(
    modalities=('rgb', 'depth', 'normals'),
    share_projections=True,
    data_preprocessor=dict(modalities=dict(normals=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))),
)
train_dataloader = dict(dataset=dict(category=category))
val_stats_dataloader = dict(dataset=dict(category=category))
test_dataloader = dict(dataset=dict(category=category))
