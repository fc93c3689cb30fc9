"""Deployment: export of a fitted detector to ONNX."""
from .onnx_export import CRDInferenceGraph, ExportError, export_metadata, export_onnx, save_onnx_model

__all__ = ['CRDInferenceGraph', 'ExportError', 'export_metadata', 'export_onnx', 'save_onnx_model']
