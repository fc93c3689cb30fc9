# Crossmodal Reverse Distillation, WideResNet-50-2 teacher (torchvision ImageNet weights, as the paper).
model = dict(
    type='CRD',
    modalities=('rgb', 'depth'),
    data_preprocessor=dict(
        type='ADDataPreprocessor',
        modalities=dict(
            rgb=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
            depth=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        )),
    teacher=dict(type='TimmEncoder', model_name='wide_resnet50_2.tv_in1k', pretrained=True, strides=(4, 8, 16)),
    crossmodal_filter=True,
    crossmodal_amplifier=True,
    bottleneck=dict(type='BottleneckProjection', bottleneck_stride=32),
    amplifier=dict(type='InvertedBottleneckProjection', expansion=2),
    ocbe=dict(type='MultiInputOCBE'),
    decoder=dict(type='ReverseDecoder'),
    fuser=dict(type='SoftmaxFuser', mode='softmax'),
    loss=dict(type='ReverseDistillationLoss'),
    aggregator=dict(type='NormalizedSum'),
    gaussian_sigma=4.0,
)
