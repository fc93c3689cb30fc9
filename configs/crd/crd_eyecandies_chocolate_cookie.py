# CRD (RGB + normals) on Eyecandies "ChocolateCookie": WRN50 teacher, 256x256, batch 16, 100 epochs (authors' code).
_base_ = [
    '../_base_/datasets/eyecandies_rgbn.py',
    '../_base_/models/crd_wrn50_rgb_normals.py',
    '../_base_/schedules/crd_adam_100e.py',
    '../_base_/default_runtime.py',
]
category = 'ChocolateCookie'
train_dataloader = dict(dataset=dict(category=category))
val_stats_dataloader = dict(dataset=dict(category=category))
test_dataloader = dict(dataset=dict(category=category))
