# Eyecandies, RGB (*_image_4.png) + surface normals (*_normals.png), 256x256, batch 16; test = test_public.
dataset_type = 'EyecandiesDataset'
data_root = 'data/eyecandies'
category = 'CandyCane'
image_size = 256
modalities = ('rgb', 'normals')

train_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadNormalsFromFile'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', 'normals')),
    dict(type='PackADInputs', modalities=modalities),
]
test_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadNormalsFromFile'),
    dict(type='LoadMaskFromFile'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', 'normals')),
    dict(type='ResizeMask', size=image_size),
    dict(type='PackADInputs', modalities=modalities),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, category=category, split='train', pipeline=train_pipeline),
)
val_stats_dataloader = dict(
    batch_size=16,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type=dataset_type, data_root=data_root, category=category, split='validation',
                 pipeline=test_pipeline, test_mode=True),
)
test_dataloader = dict(
    batch_size=16,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, category=category, split='test', pipeline=test_pipeline,
                 test_mode=True),
)
test_evaluator = dict(type='ADMetric', integration_limits=(0.3, ))
test_cfg = dict(type='TestLoop')
