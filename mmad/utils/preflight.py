"""Pre-flight check of a run: build every dataset it will use and the model before the first epoch.

A wrong statistics data root used to surface after the last epoch, missing teacher weights after the data was
found, an image size the model cannot take in the first forward pass. ``preflight_check`` builds each dataset
(train, statistics, test), loads its first sample, builds the model (which loads the teacher weights) and checks
the samples' size against the strides the model needs, then reports every problem in one message.
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field

import torch
from mmengine.config import Config
from torch import nn

from .config_checks import dataloader_keys


class PreflightError(RuntimeError):
    """The run cannot start; the message lists every problem found, one per line."""


@dataclass
class PreflightReport:
    """What the pre-flight check built: the number of samples of each dataloader's dataset, and the model."""

    dataset_sizes: dict[str, int] = field(default_factory=dict)
    model: nn.Module | None = None


def run_dataloaders(cfg: Config, training: bool) -> list[str]:
    """The dataloaders a run uses: every one with a dataset, the train loader only when training."""
    return [key for key in dataloader_keys(cfg) if training or key != 'train_dataloader']


def _strides_of(module: nn.Module):
    """A part's own ``strides``, or those of the feature levels it declares in its ``spec`` (a teacher)."""
    strides = getattr(module, 'strides', None)
    return strides if strides is not None else getattr(getattr(module, 'spec', None), 'strides', None)


def required_input_multiple(model: nn.Module) -> tuple[int, list[str]]:
    """The number the input height and width must be a multiple of, and the parts of ``model`` that need it.

    A part with ``strides`` (the teacher, through its ``spec``) needs its largest stride. A part with ``halvings``
    (a bottleneck projection that halves each teacher level further) needs ``stride * 2 ** halvings`` per level,
    with the strides its own or, when it has none, those of the first part with strides.

    Returns:
        The least common multiple of what every part needs (1 when no part has strides), and one description per
        kind of part, e.g. ``'teacher (TimmEncoder, strides (4, 8, 16)) needs 16'``.
    """
    parts = [(name, module, _int_tuple(_strides_of(module)), _int_tuple(getattr(module, 'halvings', None)))
             for name, module in model.named_modules()]
    level_strides = next((strides for _, _, strides, _ in parts if strides), None)
    multiple, reasons = 1, {}
    for name, module, strides, halvings in parts:
        strides = strides or (level_strides if halvings and len(halvings) == len(level_strides or ()) else None)
        if not strides:
            continue
        halvings = halvings if halvings and len(halvings) == len(strides) else (0, ) * len(strides)
        needs = max(stride * 2**halving for stride, halving in zip(strides, halvings))
        detail = f'strides {strides}' + (f', halvings {halvings}' if any(halvings) else '')
        reasons.setdefault((type(module).__name__, needs), f'{name or "model"} ({type(module).__name__}, {detail}) '
                           f'needs {needs}')
        multiple = math.lcm(multiple, needs)
    return multiple, list(reasons.values())


def _int_tuple(value) -> tuple[int, ...] | None:
    if isinstance(value, (tuple, list)) and value and all(isinstance(item, int) for item in value):
        return tuple(value)
    return None


def preflight_check(cfg: Config, loaders: list[str], build_model: bool = True) -> PreflightReport:
    """Build the datasets of ``loaders`` and the model (on the meta device); raise one error listing every problem.

    Args:
        cfg: The final config (after the command-line overrides), with ``default_scope`` registered.
        loaders: Top-level keys of the dataloaders to check, e.g. ``['train_dataloader', 'val_stats_dataloader']``.
        build_model: Whether to build the model too (it loads the teacher's pretrained weights).

    Returns:
        The dataset sizes and the built model, its parameters on the meta device (None when not built).

    Raises:
        PreflightError: Any dataset or the model cannot be built, a dataset is empty, a first sample cannot be
            loaded, or the samples' height/width is not a multiple of what the model needs.
    """
    from mmad.registry import DATASETS, MODELS

    problems, samples, report = [], {}, PreflightReport()
    dataset_problems: dict[str, list[str]] = {}
    for key in loaders:
        try:
            dataset = DATASETS.build(copy.deepcopy(cfg[key]['dataset']))
            report.dataset_sizes[key] = len(dataset)
            if len(dataset) == 0:
                dataset_problems.setdefault('holds no sample', []).append(key)
                continue
            samples[key] = dataset[0]
        except Exception as error:  # noqa: BLE001 - every problem is collected and reported together
            dataset_problems.setdefault(_describe(error), []).append(key)
    problems += [f'{", ".join(f"{key}.dataset" for key in keys)}: {problem}'
                 for problem, keys in dataset_problems.items()]
    if build_model:
        try:
            # On the meta device: the parts, their shapes and the teacher weights' loading (file, hash, keys and
            # shapes) are checked without allocating or initialising parameters; the runner builds the real model.
            with torch.device('meta'), warnings.catch_warnings():
                warnings.filterwarnings('ignore', message='.*to a meta parameter in the current model, which is a '
                                        'no-op')
                report.model = MODELS.build(copy.deepcopy(cfg.model))
        except Exception as error:  # noqa: BLE001 - reported together with the dataset problems
            problems.append(f'model: {_describe(error)}')
    if report.model is not None:
        problems += _input_size_problems(cfg, report.model, samples)
    if problems:
        raise PreflightError(f'The run cannot start ({len(problems)} problem{"s" if len(problems) > 1 else ""}):\n'
                             + '\n'.join(f'  - {problem}' for problem in problems))
    return report


def _describe(error: BaseException) -> str:
    text = str(error).strip().replace('\n', '\n    ')
    return f'{type(error).__name__}: {text}' if text else type(error).__name__


def _input_size_problems(cfg: Config, model: nn.Module, samples: dict[str, dict]) -> list[str]:
    multiple, reasons = required_input_multiple(model)
    if multiple == 1:
        return []
    loaders_by_size: dict[tuple[int, int], list[str]] = {}
    for key, sample in samples.items():
        inputs = sample.get('inputs') if isinstance(sample, dict) else None
        tensors = inputs.values() if isinstance(inputs, dict) else [inputs]
        for size in sorted({tuple(tensor.shape[-2:]) for tensor in tensors if isinstance(tensor, torch.Tensor)}):
            if size[0] % multiple or size[1] % multiple:
                loaders_by_size.setdefault(size, []).append(key)
    problems = []
    for (height, width), keys in loaders_by_size.items():
        image_size = cfg.get('image_size')
        setting = (f'image_size {image_size}' if image_size in (height, (height, width), [height, width])
                   else f'the image size of the {", ".join(keys)} pipeline{"s" if len(keys) > 1 else ""}')
        lower = max(multiple, min(height, width) // multiple * multiple)
        problems.append(
            f'{setting}: the samples of {", ".join(keys)} are {height}x{width}, but height and width must be '
            f'multiples of {multiple} ({"; ".join(reasons)}); valid values: {multiple}, {2 * multiple}, '
            f'{3 * multiple}, ... (nearest: {lower}, {lower + multiple})')
    return problems
