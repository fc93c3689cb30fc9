"""Score new samples with a trained model: :func:`init_model` and :func:`inference_model`.

A sample is a dict from the file keys of the config's test pipeline (``rgb``, ``xyz``, ``normals``: the loaders
``LoadRGBFromFile``, ``LoadXYZFromFile``, ``LoadNormalsFromFile``, any ``Load<Key>FromFile``) to a path or an array,
plus an optional ``mask`` (path of a ground-truth mask, drawn in overlays; without one the pipeline's mask
transforms get an all-zero mask) and an optional ``name``::

    >>> from mmad.apis import inference_model, init_model
    >>> model = init_model('configs/crd/crd_demo_synthetic.py', find_last_checkpoint('work_dirs/crd_demo_synthetic'))
    >>> result = inference_model(model, dict(rgb='test/crack/rgb/000.png', xyz='test/crack/xyz/000.tiff'))
    >>> result.score, result.decision, result.anomaly_map.shape  # map at the rgb file's native size

The config's test pipeline runs unchanged, so preprocessing cannot drift from training and testing; only its
``CachedTransforms`` are replaced by the steps they wrap (a new file is read once: no disk cache).
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from torch import nn

from mmad.datasets.transforms.cache import uncached_steps
from mmad.registry import MODELS, TRANSFORMS
from mmad.utils.config_file import read_config
from mmad.utils.model_checkpoint import load_model_checkpoint

MASK_KEY = 'mask'
NAME_KEY = 'name'
_LOADER_NAME = re.compile(r'^Load(\w+)FromFile$')
_MASK_LOADER = 'LoadMaskFromFile'


class InferenceInputError(ValueError):
    """A sample given to :func:`inference_model` cannot be scored (missing modality, bad file or array)."""


@dataclass
class InferenceResult:
    """What the model says about one sample.

    Attributes:
        name: The sample's name (``name`` of the sample, else the stem of its first file).
        anomaly_map: Fused anomaly map at the sample's native size, float32 (H0, W0).
        branch_maps: Branch -> its smoothed anomaly map at the native size, float32 (H0, W0).
        score: Image score: the maximum of the fused map at the model's size (as ``tools/test.py`` scores it).
        branch_scores: Branch -> the maximum of its map at the model's size.
        threshold: The decision threshold used, None when the model has none and none was given.
        decision: 1 anomalous (``score > threshold``), 0 good, None without a threshold.
        ori_shape: Native (H0, W0).
        inputs: Modality -> the packed model input before normalisation, float32 (C, H, W) at the model's size.
        gt_mask: The given ground-truth mask at the native size, bool (H0, W0), or None.
        files: File key -> the path it was read from (arrays are not listed).
    """

    name: str
    anomaly_map: np.ndarray
    branch_maps: dict[str, np.ndarray]
    score: float
    branch_scores: dict[str, float]
    threshold: float | None
    decision: int | None
    ori_shape: tuple[int, int]
    inputs: dict[str, np.ndarray] = field(repr=False)
    gt_mask: np.ndarray | None = field(default=None, repr=False)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``'anomalous'``, ``'good'`` or ``'undecided'`` (no threshold)."""
        return {1: 'anomalous', 0: 'good', None: 'undecided'}[self.decision]


def init_model(config: str | Path | Config, checkpoint: str | Path | None = None, device: str = 'cpu',
               cfg_options: dict | None = None) -> nn.Module:
    """Build the config's model, load a checkpoint strictly and put the model in eval mode.

    Args:
        config: Config file or object.
        checkpoint: Checkpoint file; it must fit the model (modalities, branches, teacher, keys, shapes) or a
            one-line :class:`~mmad.utils.model_checkpoint.CheckpointMismatchError` names the difference. None leaves
            the model as built (no fitted statistics: :func:`inference_model` then refuses it).
        device: Torch device, e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: Overrides merged into the config.

    Returns:
        The model, with the config at ``model.cfg``.
    """
    from mmad.utils import register_all_modules

    register_all_modules()
    cfg = config if isinstance(config, Config) else read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmad'))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_model_checkpoint(model, str(checkpoint), map_location='cpu')
    model.cfg = cfg
    return model.to(device).eval()


class InferencePipeline:
    """The config's test pipeline, fed from a sample dict of paths or arrays instead of a dataset entry.

    Args:
        pipeline: The test pipeline's transform configs.
    """

    def __init__(self, pipeline: Sequence[dict]) -> None:
        self.transforms = [TRANSFORMS.build(dict(transform)) for transform in uncached_steps(pipeline)]
        self.file_keys: list[str] = []
        for transform in self.transforms:
            key = loader_key(transform)
            if key is not None and key != MASK_KEY:
                self.file_keys.append(key)
        if not self.file_keys:
            raise ValueError('The test pipeline loads no file (no Load<Key>FromFile transform); inference needs its '
                             'loaders to know which files a sample has.')

    def __call__(self, sample: Mapping) -> dict:
        """Run the pipeline on one sample.

        Args:
            sample: File key -> path or array (every key of :attr:`file_keys`), optional ``mask`` and ``name``.

        Returns:
            ``dict(inputs=..., data_samples=...)`` as ``PackADInputs`` writes it.

        Raises:
            InferenceInputError: One line naming what is wrong with the sample and what was expected.
        """
        name = sample_name(sample)
        self._check_keys(sample, name)
        results = dict(sample_name=name, gt_path=None)
        arrays = {}
        for key in self.file_keys:
            value = sample[key]
            if isinstance(value, (str, Path)):
                results[f'{key}_path'] = str(value)
            else:
                arrays[key] = _checked_array(key, value, name)
                results[f'{key}_path'] = None
        if sample.get(MASK_KEY) is not None:
            results['gt_path'] = str(sample[MASK_KEY])
        self._check_array_sizes(arrays, name)
        results.update(arrays)
        if 'rgb' in arrays:
            results['ori_shape'] = arrays['rgb'].shape[:2]
        try:
            for transform in self.transforms:
                if loader_key(transform) not in arrays:
                    results = transform(results)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InferenceInputError(f'sample {name}: {_one_line(error)}') from None
        return results

    def _check_keys(self, sample: Mapping, name: str) -> None:
        if not isinstance(sample, Mapping):
            raise InferenceInputError(f'a sample must be a dict file key -> path or array (keys {self.file_keys}), '
                                      f'got {type(sample).__name__}.')
        missing = [key for key in self.file_keys if sample.get(key) is None]
        if missing:
            given = sorted(key for key, value in sample.items()
                           if value is not None and key not in (MASK_KEY, NAME_KEY))
            raise InferenceInputError(f'sample {name}: missing modality {", ".join(missing)}; the test pipeline '
                                      f'reads {", ".join(self.file_keys)} (got {", ".join(given) or "none"}).')
        unknown = sorted(set(sample) - set(self.file_keys) - {MASK_KEY, NAME_KEY})
        if unknown:
            raise InferenceInputError(f'sample {name}: unknown input {", ".join(unknown)}; the test pipeline reads '
                                      f'{", ".join(self.file_keys)} (and optionally {MASK_KEY}, {NAME_KEY}).')

    @staticmethod
    def _check_array_sizes(arrays: Mapping[str, np.ndarray], name: str) -> None:
        sizes = {key: array.shape[:2] for key, array in arrays.items()}
        if len(set(sizes.values())) > 1:
            described = ', '.join(f'{key} {size[0]}x{size[1]}' for key, size in sizes.items())
            raise InferenceInputError(f'sample {name}: the arrays have different sizes ({described}, HxW); a '
                                      'sample\'s modalities must have the same size.')


def loader_key(transform) -> str | None:
    """The file key a loading transform reads (``LoadXYZFromFile`` -> ``'xyz'``; the mask -> ``'mask'``)."""
    match = _LOADER_NAME.match(type(transform).__name__)
    if match is None:
        return None
    return MASK_KEY if type(transform).__name__ == _MASK_LOADER else match.group(1).lower()


def sample_name(sample: Mapping) -> str:
    """The name of a sample: its ``name``, else the stem of its first file path, else ``'<array>'``."""
    if isinstance(sample, Mapping):
        if sample.get(NAME_KEY):
            return str(sample[NAME_KEY])
        for key, value in sample.items():
            if key != MASK_KEY and isinstance(value, (str, Path)):
                return Path(value).stem
    return '<array>'


def inference_model(model: nn.Module, samples: Mapping | Sequence[Mapping], threshold: float | None = None,
                    batch_size: int | None = None) -> InferenceResult | list[InferenceResult]:
    """Score one sample or a list of samples.

    Args:
        model: A model from :func:`init_model` (``model.cfg`` holds the config), its aggregator fitted.
        samples: A sample (dict file key -> path or array, see the module docstring) or a list of them.
        threshold: Decision threshold replacing the model's (``model.decision_threshold``); None uses the model's.
        batch_size: Samples per forward pass; None scores a list in one batch.

    Returns:
        One :class:`InferenceResult`, or a list for a list of samples.

    Raises:
        InferenceInputError: A sample cannot be scored (one line naming it and what was expected).
    """
    single = isinstance(samples, Mapping)
    sample_list = [samples] if single else list(samples)
    pipeline = pipeline_of(model)
    prepared = [pipeline(sample) for sample in sample_list]
    size = batch_size or max(len(prepared), 1)
    results = []
    for start in range(0, len(prepared), size):
        results.extend(predict_prepared(model, prepared[start:start + size], threshold))
    return results[0] if single else results


def pipeline_of(model: nn.Module) -> InferencePipeline:
    """The :class:`InferencePipeline` of ``model.cfg``'s test pipeline (built once per model)."""
    pipeline = getattr(model, '_inference_pipeline', None)
    if pipeline is None:
        cfg = getattr(model, 'cfg', None)
        if cfg is None:
            raise ValueError('inference_model needs model.cfg (the config); build the model with init_model.')
        steps = cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline
        pipeline = InferencePipeline(steps)
        model._inference_pipeline = pipeline
    return pipeline


def predict_prepared(model: nn.Module, prepared: Sequence[dict], threshold: float | None = None
                     ) -> list[InferenceResult]:
    """Score samples already run through the pipeline (``InferencePipeline`` outputs), as one batch.

    Args:
        model: The model (eval mode).
        prepared: Pipeline outputs, all of the model's input size.
        threshold: Threshold replacing the model's; None uses the model's.

    Returns:
        One result per sample, in order.
    """
    if not prepared:
        return []
    aggregator = getattr(model, 'aggregator', None)
    if aggregator is not None and not aggregator.is_fitted:
        raise RuntimeError(f'The model\'s {type(aggregator).__name__} is not fitted: the checkpoint holds no '
                           'statistics of the validation maps. Use a checkpoint saved after training (the '
                           'ValidationStatisticsHook re-saves it with them).')
    if threshold is None:
        threshold = getattr(model, 'decision_threshold', None)
    elif not math.isfinite(float(threshold)):
        raise ValueError(f'threshold must be a finite number, got {threshold}.')
    with torch.inference_mode():
        data = model.data_preprocessor(pseudo_collate(list(prepared)), False)
        predictions = model.predict(data['inputs'], data['data_samples'])
    return [_result(item, prediction, threshold) for item, prediction in zip(prepared, predictions)]


def _result(item: dict, prediction, threshold: float | None) -> InferenceResult:
    height, width = (int(size) for size in prediction.ori_shape)
    score = float(prediction.pred_score)
    files = {key[:-len('_path')]: value for key, value in prediction.metainfo.items()
             if key.endswith('_path') and key not in ('img_path', 'gt_path') and value is not None}
    gt_mask = None
    if prediction.get('gt_path') is not None:
        from mmad.evaluation.metrics.ad_metric import read_native_mask
        gt_mask = read_native_mask(prediction.gt_path, (height, width))
    return InferenceResult(
        name=str(prediction.sample_name),
        anomaly_map=_native(prediction.anomaly_map, height, width),
        branch_maps={name: _native(branch_map, height, width) for name, branch_map in prediction.branch_maps.items()},
        score=score,
        branch_scores={name: float(value) for name, value in prediction.branch_scores.items()},
        threshold=None if threshold is None else float(threshold),
        decision=None if threshold is None else int(score > float(threshold)),
        ori_shape=(height, width),
        inputs={name: tensor.numpy() for name, tensor in item['inputs'].items()},
        gt_mask=gt_mask,
        files=files)


def _native(score_map: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Upsample a model-size map bilinearly to the native size (as ``ADMetric(resolution='native')``)."""
    array = score_map.detach().float().cpu().numpy()
    if array.shape == (height, width):
        return array
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)


def _checked_array(key: str, value, name: str) -> np.ndarray:
    """An array input, checked as its loader checks a file: (H, W, 3); rgb uint8; xyz float, NaN -> missing."""
    array = np.asarray(value)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InferenceInputError(f'sample {name}: the {key} array has shape {array.shape}; expected (H, W, 3) '
                                  '(3 channels).')
    if key == 'rgb':
        if array.dtype != np.uint8:
            raise InferenceInputError(f'sample {name}: the rgb array has dtype {array.dtype}; expected uint8 in '
                                      'RGB channel order.')
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise InferenceInputError(f'sample {name}: the {key} array has dtype {array.dtype}; expected floats.')
    array = array.astype(np.float32)
    non_finite = ~np.isfinite(array).all(axis=2)
    if non_finite.all():
        raise InferenceInputError(f'sample {name}: every value of the {key} array is NaN or inf; expected a '
                                  'measured point cloud.')
    if non_finite.any():
        warnings.warn(f'sample {name}: {int(non_finite.sum())} points of the {key} array have NaN/inf coordinates '
                      'and are treated as missing (0, 0, 0), as the file loader does.', stacklevel=3)
        array[non_finite] = 0
    return array


def _one_line(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return ' '.join(text.split())
