"""Hooks of mmad."""
from .safe_checkpoint_hook import SafeCheckpointHook
from .validation_statistics_hook import ValidationStatisticsHook, compute_map_statistics
from .visualization_hook import AnomalyMapVisualizationHook

__all__ = ['AnomalyMapVisualizationHook', 'SafeCheckpointHook', 'ValidationStatisticsHook', 'compute_map_statistics']
