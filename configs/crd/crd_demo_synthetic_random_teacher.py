# The demo with a RANDOMLY INITIALISED resnet18 teacher and ImageNet normalisation: no weights file, fast. Only the
# tool tests use it (tests/test_tools/tiny_config.py); its detection numbers mean nothing.
_base_ = ['./crd_demo_synthetic.py']
model = dict(
    data_preprocessor=dict(modalities=dict(
        rgb=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
        depth=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))),
    teacher=dict(_delete_=True, type='TimmEncoder', model_name='resnet18', pretrained=False, strides=(4, 8, 16)))
