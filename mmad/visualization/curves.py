"""PNG plots of the ROC and PRO curves a test run saved in ``curves.npz`` (format in docs/metrics.md).

``curves.npz`` holds, per source (``fused`` and each branch), the keys ``<source>/<curve>/<axis>``: ``image_roc``
and ``pixel_roc`` (``fpr``, ``tpr``), ``pro`` (``fpr``, ``pro``), ... :func:`plot_curves` draws one figure per kind,
one line per source, with matplotlib's Agg backend (no display), and writes it with the checked writer.
"""
from __future__ import annotations

import io
import os.path as osp
from collections.abc import Mapping

import numpy as np

from mmad.utils.fileio import write_bytes

#: File name -> (curve, x axis, y axis, title) of the figures :func:`plot_curves` writes.
CURVE_FIGURES = {
    'roc_image.png': ('image_roc', 'fpr', 'tpr', 'Image ROC'),
    'roc_pixel.png': ('pixel_roc', 'fpr', 'tpr', 'Pixel ROC'),
    'pro.png': ('pro', 'fpr', 'pro', 'PRO (per-region overlap)'),
}
AXIS_LABELS = dict(fpr='false positive rate', tpr='true positive rate', pro='per-region overlap')


def load_curves(path: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Read ``curves.npz`` into ``{source: {curve: {axis: array}}}``, sources in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist (named in the message).
        ValueError: A key is not ``<source>/<curve>/<axis>``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist; expected the curves.npz a test run writes beside '
                                'metrics.json')
    curves: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            parts = key.split('/')
            if len(parts) != 3:
                raise ValueError(f'{path}: key {key!r} is not <source>/<curve>/<axis>')
            source, curve, axis = parts
            curves.setdefault(source, {}).setdefault(curve, {})[axis] = arrays[key]
    return curves


def plot_curves(curves: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], out_dir: str,
                pro_limit: float | None = 0.3) -> list[str]:
    """Write one PNG per figure of :data:`CURVE_FIGURES` into ``out_dir``: every source's curve, with its area.

    Args:
        curves: ``{source: {curve: {axis: array}}}`` (see :func:`load_curves`).
        out_dir: Output folder.
        pro_limit: FPR integration limit of the AU-PRO drawn as a dashed line on the PRO figure (None: none).

    Returns:
        The written paths (a figure whose curve no source has, e.g. PRO without anomalous pixels, is skipped).
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    written = []
    for file_name, (curve, x_axis, y_axis, title) in CURVE_FIGURES.items():
        lines = {source: (kinds[curve][x_axis], kinds[curve][y_axis]) for source, kinds in curves.items()
                 if curve in kinds and kinds[curve][x_axis].size > 0}
        if not lines:
            continue
        figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=100)
        for source, (x, y) in lines.items():
            order = np.argsort(x, kind='stable')
            area = float(np.trapezoid(y[order], x[order]))
            axes.plot(x, y, lw=2.0 if source == 'fused' else 1.2, label=f'{source} (area {area:.3f})')
        if curve != 'pro':
            axes.plot([0, 1], [0, 1], color='grey', lw=0.8, ls=':')
        elif pro_limit is not None:
            axes.axvline(pro_limit, color='grey', lw=0.8, ls='--', label=f'FPR limit {pro_limit:g}')
        axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=AXIS_LABELS[x_axis], ylabel=AXIS_LABELS[y_axis], title=title)
        axes.legend(loc='lower right', fontsize=8)
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format='png')
        plt.close(figure)
        path = osp.join(out_dir, file_name)
        write_bytes(path, buffer.getvalue())
        written.append(path)
    return written
