"""Bottlenecks of the student: RD's (multi-input) OCBE and CRD's crossmodal projections."""
from .bottleneck_projection import BottleneckProjection
from .inverted_bottleneck_projection import InvertedBottleneckProjection
from .multi_input_ocbe import MultiInputOCBE

__all__ = ['BottleneckProjection', 'InvertedBottleneckProjection', 'MultiInputOCBE']
