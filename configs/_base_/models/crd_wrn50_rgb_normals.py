# CRD with a WRN50 teacher for RGB + surface normals (Eyecandies): normals in [0, 1] are ImageNet-normalised.
_base_ = ['./crd_wrn50.py']
model = dict(
    modalities=('rgb', 'normals'),
    data_preprocessor=dict(
        _delete_=True,
        type='ADDataPreprocessor',
        modalities=dict(
            rgb=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
            normals=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        )),
)
