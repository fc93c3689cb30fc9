# CRD (RGB + depth) on Eyecandies "CandyCane": NNN_depth.png + NNN_info_depth.yaml back-projected to xyz (pinhole,
# 711.11 px, principal point at the centre), then the authors' depth preprocessing; WRN50 teacher, 256x256, batch 16,
# 100 epochs.
_base_ = [
    '../_base_/datasets/eyecandies_rgbd.py',
    '../_base_/models/crd_wrn50.py',
    '../_base_/schedules/crd_adam_100e.py',
    '../_base_/default_runtime.py',
]
category = 'CandyCane'
train_dataloader = dict(dataset=dict(category=category))
val_stats_dataloader = dict(dataset=dict(category=category))
test_dataloader = dict(dataset=dict(category=category))
