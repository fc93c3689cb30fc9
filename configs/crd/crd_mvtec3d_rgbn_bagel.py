# CRD (RGB + normals) on MVTec 3D-AD "bagel": normals = Sobel normals of the authors' depth map (their later
# variant), WRN50 teacher, 256x256, batch 16, 200 epochs.
_base_ = [
    '../_base_/datasets/mvtec3d_rgbn.py',
    '../_base_/models/crd_wrn50_rgb_normals.py',
    '../_base_/schedules/crd_adam_200e.py',
    '../_base_/default_runtime.py',
]
category = 'bagel'
train_dataloader = dict(dataset=dict(category=category))
val_stats_dataloader = dict(dataset=dict(category=category))
test_dataloader = dict(dataset=dict(category=category))
