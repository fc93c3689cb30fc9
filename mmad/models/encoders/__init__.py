"""Frozen teachers (feature encoders)."""
from .timm_encoder import TimmEncoder

__all__ = ['TimmEncoder']
