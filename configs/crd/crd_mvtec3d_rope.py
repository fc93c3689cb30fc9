# CRD (RGB + depth) on MVTec 3D-AD "rope": WRN50 teacher, 256x256, batch 16, 200 epochs (the paper's settings).
_base_ = [
    '../_base_/datasets/mvtec3d_rgbd.py',
    '../_base_/models/crd_wrn50.py',
    '../_base_/schedules/crd_adam_200e.py',
    '../_base_/default_runtime.py',
]
category = 'rope'
train_dataloader = dict(dataset=dict(category=category))
val_stats_dataloader = dict(dataset=dict(category=category))
test_dataloader = dict(dataset=dict(category=category))
