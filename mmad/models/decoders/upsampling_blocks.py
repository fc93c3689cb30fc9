"""Residual blocks that upsample: the mirror images of ResNet's BasicBlock and Bottleneck.

Reverse Distillation's decoder replaces every stride-2 3x3 convolution of the teacher (and the strided 1x1
shortcut) with a 2x2 transposed convolution of stride 2, so each upsampling block doubles the resolution.
"""
from torch import Tensor, nn


def transposed_conv2x2(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """2x2 transposed convolution of stride 2 without bias: doubles height and width."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2, bias=False)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 convolution of stride 1 without bias: keeps height and width."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)


def upsampling_shortcut(in_channels: int, out_channels: int) -> nn.Sequential:
    """Shortcut of an upsampling block: 2x2 transposed convolution of stride 2 + BatchNorm."""
    return nn.Sequential(transposed_conv2x2(in_channels, out_channels), nn.BatchNorm2d(out_channels))


class UpsamplingBasicBlock(nn.Module):
    """Mirror of ResNet's BasicBlock: two convolutions, the first one upsampling when ``upsample``.

    Args:
        in_channels: Channels of the input.
        planes: Channels of the output (``planes * expansion``, expansion 1).
        upsample: Double height and width (first block of a stage) with a transposed-convolution shortcut.
        width_factor: Must be 1: a BasicBlock has no inner width to widen.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, upsample: bool = False, width_factor: float = 1.0) -> None:
        super().__init__()
        if width_factor != 1:
            raise ValueError(f'UpsamplingBasicBlock supports width_factor=1 only, got {width_factor}.')
        if not upsample and in_channels != planes:
            raise ValueError(f'A non-upsampling block keeps its channels: in_channels={in_channels} '
                             f'must equal planes={planes}.')
        self.conv1 = transposed_conv2x2(in_channels, planes) if upsample else conv3x3(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = upsampling_shortcut(in_channels, planes) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Input, shape (B, in_channels, H, W).

        Returns:
            Output, shape (B, planes, 2H, 2W) when upsampling, else (B, planes, H, W).
        """
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class UpsamplingBottleneck(nn.Module):
    """Mirror of ResNet's Bottleneck: 1x1, 3x3 (2x2 transposed when upsampling), 1x1 convolutions.

    Args:
        in_channels: Channels of the input.
        planes: Output channels divided by the expansion (4).
        upsample: Double height and width (first block of a stage) with a transposed-convolution shortcut.
        width_factor: Inner width relative to ``planes`` (2 for wide ResNets).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, upsample: bool = False, width_factor: float = 1.0) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        if not upsample and in_channels != out_channels:
            raise ValueError(f'A non-upsampling block keeps its channels: in_channels={in_channels} '
                             f'must equal planes * {self.expansion}={out_channels}.')
        width = int(planes * width_factor)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = transposed_conv2x2(width, width) if upsample else conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = upsampling_shortcut(in_channels, out_channels) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Input, shape (B, in_channels, H, W).

        Returns:
            Output, shape (B, 4 * planes, 2H, 2W) when upsampling, else (B, 4 * planes, H, W).
        """
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


UPSAMPLING_BLOCKS: dict[str, type[UpsamplingBasicBlock | UpsamplingBottleneck]] = {
    'basic': UpsamplingBasicBlock,
    'bottleneck': UpsamplingBottleneck,
}
