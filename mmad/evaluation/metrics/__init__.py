"""mmengine metrics of mmad, registered in ``METRICS``."""
from .ad_metric import ADMetric
from .evaluated_samples import EvaluatedSamples
from .results_table import format_metrics_table

__all__ = ['ADMetric', 'EvaluatedSamples', 'format_metrics_table']
