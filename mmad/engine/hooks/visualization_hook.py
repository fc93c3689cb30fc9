"""Hook writing heatmap overlays of the test predictions."""
from __future__ import annotations

import os.path as osp

import cv2
import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmad.evaluation.metrics.result_files import CURVES_FILE
from mmad.registry import HOOKS
from mmad.utils.fileio import write_image
from mmad.visualization import draw_sample_panel, input_tile, load_curves, plot_curves


@HOOKS.register_module()
class AnomalyMapVisualizationHook(Hook):
    """Write one PNG per test sample: image, other inputs, ground truth, fused and per-branch heatmaps.

    Each panel (see :func:`mmad.visualization.draw_sample_panel`) shows the rgb image titled with the defect type,
    the score and, when the model holds a decision threshold (``model.decision_threshold``), the decision
    (``ANOMALOUS`` / ``normal``, and a red / green frame); every other input modality as the model sees it (from
    the batch's ``inputs``);
    the ground truth; then per map its overlay and a colour bar with the map's range. With a threshold, the fused
    map's region above it is outlined in white.

    Maps are kept as float16 during the test and drawn after it, so every map of one kind shares one colour
    scale (from the ``low``-th to the ``high``-th percentile of all its test pixels). Files go to
    ``out_dir/<defect_type>/<sample_name>.png``; on several processes each rank draws its own samples. A file that
    cannot be written (e.g. a full disk) raises ``OSError`` naming it.

    A runner holds at most one active heatmap hook: when several are registered (a config's hook and the one
    ``tools/test.py --show-dir`` appends), the last one draws every heatmap once into its ``out_dir`` and the
    earlier ones stay idle, so no heatmap is drawn twice.

    Args:
        out_dir: Output folder; relative paths are taken inside the work dir.
        max_samples: Draw at most this many samples (None: all).
        low: Percentile drawn as the coldest colour.
        high: Percentile drawn as the hottest colour.
        tile_size: Side of each drawn tile in pixels (maps smaller than this are enlarged for viewing).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str = 'heatmaps', max_samples: int | None = None, low: float = 1.0,
                 high: float = 99.9, tile_size: int = 192) -> None:
        self.out_dir = out_dir
        self.max_samples = max_samples
        self.low = low
        self.high = high
        self.tile_size = tile_size
        self._records: list[dict] = []
        self._active = True
        self._threshold: float | None = None

    def before_test(self, runner) -> None:
        """Forget the records of an earlier test; stay idle when a heatmap hook is registered after this one."""
        self._records = []
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._threshold = model.decision_threshold
        heatmap_hooks = [hook for hook in getattr(runner, 'hooks', ()) if isinstance(hook, AnomalyMapVisualizationHook)]
        self._active = not heatmap_hooks or heatmap_hooks[-1] is self
        if not self._active and is_main_process():
            runner.logger.info(f'AnomalyMapVisualizationHook(out_dir={self.out_dir!r}) is idle: the one registered '
                               f'after it writes the heatmaps, to {heatmap_hooks[-1].out_dir!r}')

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Keep the maps, the decision and the other input modalities of each predicted sample."""
        if not self._active:
            return
        inputs = (data_batch or {}).get('inputs', {})
        for index, sample in enumerate(outputs or []):
            if self.max_samples is not None and len(self._records) >= self.max_samples:
                return
            maps = {'fused': sample.anomaly_map.float().cpu().numpy().astype(np.float16)}
            for name, branch_map in sample.get('branch_maps', {}).items():
                maps[name] = branch_map.float().cpu().numpy().astype(np.float16)
            self._records.append(dict(
                img_path=sample.metainfo.get('img_path'), defect_type=sample.metainfo.get('defect_type', 'unknown'),
                sample_name=sample.metainfo.get('sample_name', str(len(self._records))),
                score=float(sample.pred_score), gt_mask=sample.gt_mask.cpu().numpy() if 'gt_mask' in sample else None,
                pred_label=int(sample.pred_label) if 'pred_label' in sample else None,
                inputs={name: input_tile(images[index].float().cpu().numpy())
                        for name, images in inputs.items() if name != 'rgb'},
                maps=maps))

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Draw every kept sample with colour scales shared over the test set."""
        if not self._records:
            return
        out_dir = self.out_dir if osp.isabs(self.out_dir) else osp.join(runner.work_dir, self.out_dir)
        names = list(self._records[0]['maps'])
        ranges = {}
        for name in names:
            values = np.concatenate([r['maps'][name].ravel() for r in self._records]).astype(np.float32)
            ranges[name] = (float(np.percentile(values, self.low)), float(np.percentile(values, self.high)))
        for record in self._records:
            height, width = record['maps']['fused'].shape
            scale = max(1.0, self.tile_size / max(height, width))
            size = (round(width * scale), round(height * scale))
            image = cv2.imread(record['img_path'], cv2.IMREAD_COLOR) if record['img_path'] else None
            if image is None:
                image = np.zeros((height, width, 3), np.uint8)
            image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_LINEAR)
            maps = {name: cv2.resize(record['maps'][name].astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
                    for name in names}
            gt_mask = record['gt_mask']
            if gt_mask is not None:
                gt_mask = cv2.resize(gt_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            tiles = {name: cv2.resize(tile, size, interpolation=cv2.INTER_LINEAR)
                     for name, tile in record['inputs'].items()}
            title = f"{record['defect_type']} {record['score']:.2f}"
            if record['pred_label'] is not None:
                title += ' ANOMALOUS' if record['pred_label'] else ' normal'
            panel = draw_sample_panel(image, gt_mask, maps, ranges, title=title, inputs=tiles,
                                      threshold=self._threshold,
                                      anomalous=None if record['pred_label'] is None else bool(record['pred_label']))
            write_image(osp.join(out_dir, record['defect_type'], f"{record['sample_name']}.png"),
                        cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        if is_main_process():
            runner.logger.info(f'Heatmaps of {len(self._records)} samples written to {out_dir}')
        self._records = []


@HOOKS.register_module()
class TestMetricsVisualizerHook(Hook):
    """Send the test metrics to the visualizer's backends as scalars (e.g. TensorBoard), tagged ``test/<metric>``.

    mmengine's ``LoggerHook`` hands the training losses, learning rates and validation metrics to the visualizer but
    not the test metrics; this hook adds those (``fused/all/I-AUROC`` -> ``test/fused/all/I-AUROC``). NaN metrics
    (undefined, e.g. one class only) are left out. Step: the epoch of the loaded checkpoint.
    """

    priority = 'VERY_LOW'

    def after_test_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:
        """Add every finite metric as a scalar."""
        scalars = {f'test/{key}': float(value) for key, value in (metrics or {}).items()
                   if isinstance(value, (int, float)) and np.isfinite(value)}
        if scalars:
            runner.visualizer.add_scalars(scalars, step=runner.epoch)


@HOOKS.register_module()
class TestCurvesPlotHook(Hook):
    """After the test, plot the ROC and PRO curves ``ADMetric`` saved (``curves.npz``) as PNGs beside them.

    For every metric of the test evaluator with an ``out_dir`` holding ``curves.npz``, writes ``roc_image.png``,
    ``roc_pixel.png`` and ``pro.png`` there (fused and every branch; see :func:`mmad.visualization.plot_curves`).
    Runs after ``ADMetric`` has written its files (the evaluator runs before the ``after_test_epoch`` hooks).
    """

    priority = 'VERY_LOW'

    def after_test_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:
        """Plot the curves of each metric's ``out_dir``."""
        if not is_main_process():
            return
        for metric in getattr(runner.test_evaluator, 'metrics', []):
            out_dir = getattr(metric, 'out_dir', None)
            if out_dir is None or not osp.isfile(osp.join(out_dir, CURVES_FILE)):
                continue
            paths = plot_curves(load_curves(osp.join(out_dir, CURVES_FILE)), out_dir)
            runner.logger.info(f'Curve plots written: {", ".join(paths)}')
