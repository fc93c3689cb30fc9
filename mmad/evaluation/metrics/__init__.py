"""mmengine metrics of mmad, registered in ``METRICS``."""
from .ad_metric import ADMetric
from .results_table import format_metrics_table

__all__ = ['ADMetric', 'format_metrics_table']
