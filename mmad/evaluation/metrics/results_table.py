"""Render nested anomaly-detection metrics as a plain-text table for the logs.

Example:
    >>> print(format_metrics_table({'fused': {'all': {'I-AUROC': 0.9623, 'P-AP': float('nan')}}}))
"""
import io
import math
from collections.abc import Mapping

from rich import box
from rich.console import Console
from rich.table import Table


def format_percent(value: float) -> str:
    """Format a fraction as a percentage with one decimal, ``'nan'`` when undefined."""
    return 'nan' if math.isnan(value) else f'{100 * value:.1f}'


def format_metrics_table(metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
                         title: str = 'Anomaly detection metrics (%)') -> str:
    """Render ``{scores: {subset: {metric: fraction}}}`` as a text table, one row per scores and subset.

    Args:
        metrics: Fractions in [0, 1] (NaN where undefined), nested by the anomaly scores they were computed from
            (``fused`` or a modality), the subset (``all`` or a defect type) and the metric name. Every innermost
            mapping must have the same metric names, in the same order.
        title: Title line of the table.

    Returns:
        The table as ASCII text (no colour codes, safe for any log file), metrics in percent with one decimal.
    """
    first_subsets = next(iter(metrics.values()))
    metric_names = list(next(iter(first_subsets.values())))
    table = Table(title=title, box=box.ASCII)
    table.add_column('scores')
    table.add_column('subset')
    for name in metric_names:
        table.add_column(name, justify='right')
    for source, subsets in metrics.items():
        for subset, values in subsets.items():
            table.add_row(source, subset, *(format_percent(values[name]) for name in metric_names))
        table.add_section()
    buffer = io.StringIO()
    Console(file=buffer, width=240, color_system=None, force_terminal=False).print(table)
    return buffer.getvalue().rstrip()
