"""Frozen teachers (feature encoders), the teacher contract and the converters of their weights files."""
from .teacher_spec import TeacherSpec
from .timm_encoder import TimmEncoder
from .weight_converters import EfficientNetPytorchToTimm

__all__ = ['EfficientNetPytorchToTimm', 'TeacherSpec', 'TimmEncoder']
