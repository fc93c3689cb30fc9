# CRD (RGB + normals) on Eyecandies "GummyBear": WRN50 teacher, 256x256, batch 16, 100 epochs (authors' code).
_base_ = [
    '../_base_/datasets/eyecandies_rgbn.py',
    '../_base_/models/crd_wrn50.py',
    '../_base_/schedules/crd_adam_200e.py',
    '../_base_/default_runtime.py',
]
category = 'GummyBear'
train_dataloader = dict(dataset=dict(category=category))
val_stats_dataloader = dict(dataset=dict(category=category))
test_dataloader = dict(dataset=dict(category=category))
model = dict(
    modalities=('rgb', 'normals'),
    data_preprocessor=dict(modalities=dict(
        rgb=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
        normals=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ), _delete_=True, type='ADDataPreprocessor'))
train_cfg = dict(max_epochs=100)
