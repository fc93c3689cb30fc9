"""Layers shared by the bottlenecks and the decoder: convolution + BatchNorm + ReLU, and RD's initialisation."""
from torch import nn

# RD's and CRD's initialisation: Kaiming normal (fan_out) for plain convolutions only (transposed convolutions
# keep PyTorch's default), BatchNorm weight 1 and bias 0.
RD_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu', distribution='normal'),
    dict(type='Constant', layer='_BatchNorm', val=1, bias=0),
]


def conv_bn_relu(conv: nn.Conv2d | nn.ConvTranspose2d) -> nn.Sequential:
    """Follow a (transposed) convolution with BatchNorm over its output channels and an in-place ReLU."""
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


def halvings_between(stride: int, target_stride: int) -> int:
    """Number of stride-2 steps from ``stride`` to ``target_stride``.

    Raises:
        ValueError: ``target_stride`` is not ``stride`` times a power of two.
    """
    ratio = target_stride // stride
    if target_stride % stride or ratio & (ratio - 1):
        raise ValueError(f'Stride {target_stride} is not reachable from stride {stride} by halvings: '
                         'expected the stride times a power of two.')
    return ratio.bit_length() - 1
