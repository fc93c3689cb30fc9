"""Learnable fusion of decoder and crossmodal features."""
from .softmax_fuser import SoftmaxFuser

__all__ = ['SoftmaxFuser']
