"""Losses."""
from .reverse_distillation_loss import ReverseDistillationLoss

__all__ = ['ReverseDistillationLoss']
