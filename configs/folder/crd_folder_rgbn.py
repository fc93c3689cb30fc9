# CRD (RGB + surface normals) on your own folders: normals are the Sobel normals of the depth map of the xyz point
# clouds (one table-plane fit per sample), as in ../crd/crd_mvtec3d_rgbn_*.py. Layout: edit `folders` in
# crd_folder_rgbd.py's way (docs/tutorials/own_data.md).
_base_ = ['./crd_folder_rgbd.py']
image_size = 256
modalities = ('rgb', 'normals')

train_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadXYZFromFile'),
    dict(type='FitTablePlane', size=image_size),
    dict(type='DepthFromPoints'),
    dict(type='NormalsFromDepth'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='PackADInputs', modalities=modalities),
]
test_pipeline = [
    dict(type='LoadRGBFromFile'),
    dict(type='LoadXYZFromFile'),
    dict(type='LoadMaskFromFile'),
    dict(type='FitTablePlane', size=image_size),
    dict(type='DepthFromPoints'),
    dict(type='NormalsFromDepth'),
    dict(type='ResizeImage', size=image_size, keys=('rgb', )),
    dict(type='ResizeMask', size=image_size),
    dict(type='PackADInputs', modalities=modalities),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_stats_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

model = dict(
    modalities=modalities,
    data_preprocessor=dict(
        modalities=dict(
            _delete_=True,
            rgb=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
            normals=dict(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        )),
)
