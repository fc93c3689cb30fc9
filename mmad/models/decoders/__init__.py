"""Student decoders."""
from .reverse_decoder import ReverseDecoder
from .upsampling_blocks import UpsamplingBasicBlock, UpsamplingBottleneck

__all__ = ['ReverseDecoder', 'UpsamplingBasicBlock', 'UpsamplingBottleneck']
