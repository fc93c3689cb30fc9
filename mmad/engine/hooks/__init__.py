"""Hooks of mmad."""
from .safe_checkpoint_hook import SafeCheckpointHook
from .validation_statistics_hook import ValidationStatisticsHook, fit_aggregator
from .visualization_hook import AnomalyMapVisualizationHook

__all__ = ['AnomalyMapVisualizationHook', 'SafeCheckpointHook', 'ValidationStatisticsHook', 'fit_aggregator']
