"""Load a checkpoint into a model strictly: same modalities (in order), branches, teacher, keys and shapes.

mmengine loads ``load_from`` non-strictly, so a checkpoint of another model (other modalities, another teacher, a
file of unrelated weights) would be scored with a partly or fully random model and only a warning in the log.
:func:`match_checkpoint_to_model` instead compares what the checkpoint records in ``meta['mmad']`` (written by
``SafeCheckpointHook`` with :func:`checkpoint_info`) with the model, then every key and shape of the state dict,
and raises a one-line :class:`CheckpointMismatchError` naming the first difference. It is tolerant in two places
only, where that is correct:

- wrapper prefixes: ``module.`` (DDP) before a key or after a branch (``branch_rgb.module.``);
- checkpoints written before the aggregator owned its statistics: :data:`LEGACY_KEY_MAP` maps the positional
  buffers ``val_mean`` / ``val_std`` / ``val_stats_ready`` of CRD, by the checkpoint's recorded branch order, to
  the aggregator's named buffers;
- checkpoints written before the teacher contract: :data:`LEGACY_PREFIX_MAP` moves the teacher's keys to where
  the encoder now keeps them (only keys the model expects there);
- checkpoints written before the model held a decision threshold: :data:`LEGACY_DEFAULT_PREFIXES` names the state
  that such a checkpoint may lack entirely (``threshold.*``); the model's own unset state is kept (no decision until
  one is fitted or given).

The aggregator's state is fitted on validation maps, never trained; when the checkpoint's aggregator state does
not fit the model's aggregator (e.g. a ``NormalizedSum`` checkpoint evaluated with ``Sum``), it is not used and the
model's aggregator stays unfitted (``ValidationStatisticsHook`` fits it before testing).

``SafeCheckpointHook.after_load_checkpoint`` applies this to every checkpoint the runner loads (``load_from``,
``resume``); :func:`load_model_checkpoint` does the same outside a runner (inference, tools).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from torch import Tensor, nn

from .checkpoint import load_from_local_safely

AGGREGATOR_PREFIX = 'aggregator.'
#: The one explicit map from the positional statistics buffers of CRD checkpoints written before the aggregator
#: owned them to the aggregator's named buffers: old key -> new key template (``{branch}`` filled per position).
LEGACY_KEY_MAP = {
    'val_mean': AGGREGATOR_PREFIX + 'mean_{branch}',
    'val_std': AGGREGATOR_PREFIX + 'std_{branch}',
    'val_stats_ready': AGGREGATOR_PREFIX + 'fitted',
}
#: Key prefixes of checkpoints written before the teacher contract: ``TimmEncoder`` then held timm's features model
#: directly (``teacher.model.layer1...``); it now holds it one level deeper (``teacher.model.model.layer1...``).
LEGACY_PREFIX_MAP = {'teacher.model.': 'teacher.model.model.'}
THRESHOLD_PREFIX = 'threshold.'
#: Fitted (never trained) state that older checkpoints lack as a whole: when none of its keys is in the
#: checkpoint, the model's unset default is kept.
LEGACY_DEFAULT_PREFIXES = (THRESHOLD_PREFIX, )
#: Prefixes of the state fitted after training (re-saved into the checkpoint when fitted).
FITTED_STATE_PREFIXES = (AGGREGATOR_PREFIX, THRESHOLD_PREFIX)
_WRAPPER_SEGMENT = re.compile(r'(^|\.)module\.')
_SHOWN_KEYS = 3


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model it is loaded into."""


def checkpoint_info(model: nn.Module) -> dict:
    """What a checkpoint records of its model, to be compared at load time.

    Args:
        model: The model (wrapped or not).

    Returns:
        ``modalities`` and ``branch_names`` (lists, in order) and ``teacher`` (``model.teacher.identity``), for the
        attributes the model has.
    """
    model = _unwrap(model)
    info = {}
    for attr in ('modalities', 'branch_names'):
        if hasattr(model, attr):
            info[attr] = list(getattr(model, attr))
    teacher = getattr(model, 'teacher', None)
    if teacher is not None and hasattr(teacher, 'identity'):
        info['teacher'] = dict(teacher.identity)
    return info


def upgrade_legacy_state_dict(state_dict: Mapping[str, Tensor], branch_names: list[str] | None,
                              filename: str = 'the checkpoint') -> OrderedDict:
    """Apply :data:`LEGACY_KEY_MAP` to a state dict (a copy without legacy keys is returned unchanged).

    Args:
        state_dict: A checkpoint's state dict.
        branch_names: The checkpoint's recorded branch order (``meta['mmad']['branch_names']``), or None.
        filename: Named in errors.

    Returns:
        The state dict with the named aggregator keys in place of the positional ones.

    Raises:
        CheckpointMismatchError: The branch order of the old statistics is not recorded (several branches) or does
            not match their length.
    """
    upgraded = OrderedDict((key, value) for key, value in state_dict.items() if key not in LEGACY_KEY_MAP)
    if not any(key in state_dict for key in LEGACY_KEY_MAP):
        return upgraded
    length = len(state_dict['val_mean']) if 'val_mean' in state_dict else None
    if branch_names is None or (length is not None and length != len(branch_names)):
        raise CheckpointMismatchError(f'Checkpoint {filename}: its statistics buffers val_mean/val_std are stored '
                                      'by position but the checkpoint records no matching branch order '
                                      f'(meta.mmad.branch_names={branch_names}, {length} values).')
    for old_key, new_key in LEGACY_KEY_MAP.items():
        if old_key not in state_dict:
            continue
        value = state_dict[old_key]
        if '{branch}' in new_key:
            for index, branch in enumerate(branch_names):
                upgraded[new_key.format(branch=branch)] = value[index].clone()
        else:
            upgraded[new_key] = value.clone()
    return upgraded


def _upgrade_legacy_prefixes(state_dict: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> OrderedDict:
    """Rename keys by :data:`LEGACY_PREFIX_MAP` where the old key is not the model's and the renamed one is."""
    upgraded = OrderedDict()
    for key, value in state_dict.items():
        for old_prefix, new_prefix in LEGACY_PREFIX_MAP.items():
            renamed = new_prefix + key[len(old_prefix):]
            if key.startswith(old_prefix) and key not in expected and renamed in expected:
                key = renamed
                break
        upgraded[key] = value
    return upgraded


def match_checkpoint_to_model(checkpoint: Mapping, model: nn.Module, filename: str = 'the checkpoint'
                              ) -> OrderedDict:
    """Check that ``checkpoint`` fits ``model`` and return its state dict with exactly the model's keys.

    Args:
        checkpoint: A loaded checkpoint (``dict(meta=..., state_dict=...)``) or a bare state dict.
        model: The model to load into (wrapped or not).
        filename: Named in errors.

    Returns:
        The state dict to load strictly: every key of the model's state dict, each of the model's shape.

    Raises:
        CheckpointMismatchError: Recorded modalities (or their order), branches or teacher differ from the model's,
            or keys or shapes differ. One line naming the difference.
    """
    recorded = {}
    if 'state_dict' in checkpoint:
        recorded = (checkpoint.get('meta') or {}).get('mmad') or {}
    _compare_recorded_info(recorded, checkpoint_info(model), filename)
    state_dict = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    expected = get_state_dict(_unwrap(model))
    state_dict = _strip_wrapper_prefixes(state_dict, expected)
    state_dict = upgrade_legacy_state_dict(state_dict, recorded.get('branch_names'), filename)
    state_dict = _upgrade_legacy_prefixes(state_dict, expected)
    trained = [key for key in expected if not key.startswith(FITTED_STATE_PREFIXES)]
    if not any(key in state_dict for key in trained):
        raise CheckpointMismatchError(
            f'Checkpoint {filename} holds none of the model\'s {len(trained)} weights (its keys: '
            f'{_few(list(state_dict))}): not a checkpoint of this model.')
    state_dict = _aggregator_state_or_model_default(state_dict, expected, filename)
    state_dict = _legacy_defaults(state_dict, expected)
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [f'{key} {_shape(state_dict[key])} in the checkpoint, {_shape(value)} in the model'
                  for key, value in expected.items() if key in state_dict and _shape(state_dict[key]) != _shape(value)]
    problems = [f'{len(keys)} {what} ({_few(keys)})'
                for keys, what in ((missing, 'weights missing'), (unexpected, 'unexpected weights'),
                                   (mismatched, 'shapes differ')) if keys]
    if problems:
        raise CheckpointMismatchError(f'Checkpoint {filename} does not fit the model: {"; ".join(problems)}.')
    return OrderedDict((key, state_dict[key]) for key in expected)


def load_model_checkpoint(model: nn.Module, filename: str, map_location: str | torch.device = 'cpu') -> dict:
    """Load a local checkpoint into ``model`` with every check of :func:`match_checkpoint_to_model`.

    Args:
        model: The model (wrapped or not).
        filename: Path of the checkpoint.
        map_location: As in :func:`torch.load`.

    Returns:
        The loaded checkpoint.
    """
    checkpoint = load_from_local_safely(filename, map_location=map_location)
    state_dict = match_checkpoint_to_model(checkpoint, model, filename)
    load_state_dict(_unwrap(model), state_dict, strict=True)
    return checkpoint


def _compare_recorded_info(recorded: Mapping, current: Mapping, filename: str) -> None:
    for attr, what in (('modalities', 'modalities'), ('branch_names', 'branches')):
        if attr not in recorded or attr not in current:
            continue
        saved, wanted = tuple(recorded[attr]), tuple(current[attr])
        if saved == wanted:
            continue
        if sorted(saved) == sorted(wanted):
            raise CheckpointMismatchError(
                f'Checkpoint {filename} was trained with {what} in the order {saved}, the model lists {wanted}: the '
                f'order decides the inputs of every part; set {attr}={saved} in the config.')
        raise CheckpointMismatchError(f'Checkpoint {filename} was trained with {what} {saved}, the model has '
                                      f'{wanted}.')
    saved_teacher, teacher = recorded.get('teacher'), current.get('teacher')
    if saved_teacher is None or teacher is None:
        return
    for key, value in teacher.items():
        saved = saved_teacher.get(key)
        if saved is not None and value is not None and saved != value:
            raise CheckpointMismatchError(f'Checkpoint {filename} was trained with the teacher {key}={saved!r}, the '
                                          f'model\'s teacher has {key}={value!r}.')


def _strip_wrapper_prefixes(state_dict: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> OrderedDict:
    """Drop ``module.`` segments of distributed wrappers from keys the model does not have as they are."""
    stripped = OrderedDict()
    for key, value in state_dict.items():
        if key not in expected:
            unwrapped = _WRAPPER_SEGMENT.sub(r'\1', key)
            key = unwrapped if unwrapped in expected else key
        stripped[key] = value
    return stripped


def _aggregator_state_or_model_default(state_dict: OrderedDict, expected: Mapping[str, Tensor],
                                       filename: str) -> OrderedDict:
    """The checkpoint's aggregator state when it fits the model's aggregator, else the model's own (unfitted)."""
    saved = {key: value for key, value in state_dict.items() if key.startswith(AGGREGATOR_PREFIX)}
    wanted = {key: value for key, value in expected.items() if key.startswith(AGGREGATOR_PREFIX)}
    fits = saved.keys() == wanted.keys() and all(_shape(saved[key]) == _shape(wanted[key]) for key in wanted)
    if fits:
        return state_dict
    if saved:
        print_log(f'Checkpoint {filename}: its aggregator state ({_few(list(saved))}) does not fit the model\'s '
                  f'aggregator ({_few(list(wanted)) if wanted else "no state"}); it is not used.',
                  logger='current', level=30)
    kept = OrderedDict((key, value) for key, value in state_dict.items() if not key.startswith(AGGREGATOR_PREFIX))
    kept.update((key, value.detach().clone()) for key, value in wanted.items())
    return kept


def _legacy_defaults(state_dict: OrderedDict, expected: Mapping[str, Tensor]) -> OrderedDict:
    """Add the model's own state under each :data:`LEGACY_DEFAULT_PREFIXES` prefix the checkpoint lacks entirely."""
    for prefix in LEGACY_DEFAULT_PREFIXES:
        if any(key.startswith(prefix) for key in state_dict):
            continue
        state_dict.update((key, value.detach().clone()) for key, value in expected.items() if key.startswith(prefix))
    return state_dict


def _shape(value) -> tuple | str:
    return tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__


def _few(keys: list[str]) -> str:
    shown = ', '.join(keys[:_SHOWN_KEYS])
    return shown + (', ...' if len(keys) > _SHOWN_KEYS else '')


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model
