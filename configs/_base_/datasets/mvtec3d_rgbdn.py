# MVTec 3D-AD, RGB + depth + surface normals, 256x256: one plane fit, then the authors' depth and its Sobel normals.
dataset_type = 'MVTec3DDataset'
data_root = 'data/mvtec_3d_anomaly_detection'
category = 'bagel'
image_size = 256
modalities = ('rgb', 'depth', 'normals')

# CachedTransforms: the point-cloud steps run once per file, their arrays are kept outside the data ($MMAD_CACHE_DIR
# or ~/.cache/mmad/derived; docs/datasets.md, 'Disk cache of the point-cloud steps').
train_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='CachedTransforms', keys=('depth', 'normals'), transforms=[
        dict(type='LoadXYZFromFile'),
        dict(type='FitTablePlane', size=image_size),
        dict(type='DepthFromPoints'),
        dict(type='NormalsFromDepth'),
    ]),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='PackADInputs', modalities=modalities),
]
test_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='CachedTransforms', keys=('depth', 'normals'), transforms=[
        dict(type='LoadXYZFromFile'),
        dict(type='FitTablePlane', size=image_size),
        dict(type='DepthFromPoints'),
        dict(type='NormalsFromDepth'),
    ]),
    dict(type='LoadMaskFromFile'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='ResizeMask', size=image_size),
    dict(type='PackADInputs', modalities=modalities),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, category=category, split='train',
                 pipeline=train_pipeline),
)
# Normal-only validation split: used only for the map statistics (no model selection).
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
    dataset=dict(type=dataset_type, data_root=data_root, category=category, split='test',
                 pipeline=test_pipeline, test_mode=True),
)
test_evaluator = dict(type='ADMetric', integration_limits=(0.3, ))
test_cfg = dict(type='TestLoop')
