"""Evaluation of anomaly detection: ``functional`` (numpy only) and ``metrics`` (mmengine, registers ADMetric).

This package imports neither sub-package, so that ``import mmad.evaluation.functional`` stays free of torch;
``mmad.evaluation.metrics`` registers the metrics (the ``METRICS`` registry location).
"""
