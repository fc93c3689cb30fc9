"""Anomaly-detection metrics on numpy arrays (no torch): AUROC, average precision and the exact AU-PRO."""
from .pixel_metrics import PixelMetrics, pixel_metrics
from .pro import au_pro
from .ranking import auroc, average_precision
from .regions import RegionScores, split_by_regions

__all__ = ['PixelMetrics', 'RegionScores', 'au_pro', 'auroc', 'average_precision', 'pixel_metrics',
           'split_by_regions']
