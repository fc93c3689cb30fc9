"""Checks of command-line config overrides: refuse those that would be ignored, reject unusable values.

A config file's top-level variables (``data_root``, ``category``, ``image_size``, ...) are read while the file is
parsed: overriding them afterwards changes nothing the run uses. New keys nobody reads (``trian_cfg.max_epochs``,
``model.teacher.pretrianed``) would be ignored as silently. Both are refused here with a one-line message that says
what to set instead.

Example: ``check_overrides(cfg, {'data_root': 'x'})`` raises ``ConfigError`` saying to use ``--data-root``.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator

from mmengine.config import Config, DictAction

# Top-level keys read by mmengine's Runner (beyond its constructor arguments) and by mmad's tools.
EXTRA_READ_KEYS = frozenset({
    'model_wrapper_cfg', 'compile', 'activation_checkpointing', 'efficient_conv_bn_eval', 'custom_imports',
    'gpu_ids', 'find_unused_parameters', 'runner_type', 'work_dir', 'launcher'})
LOOP_KEYS = ('train_cfg', 'val_cfg', 'test_cfg')
DATA_LOCATION_OPTIONS = {'data_root': '--data-root', 'category': '--category'}
MAX_LISTED = 4


class ConfigError(ValueError):
    """A config setting or override that cannot work; the message is one line per problem."""


def parse_cfg_options(options: list[str] | None) -> dict:
    """Parse ``--cfg-options`` ``key=value`` strings like mmengine's ``DictAction``, with one-line errors.

    Args:
        options: The raw strings, e.g. ``['train_cfg.max_epochs=10', 'model.modalities=[rgb,depth]']``.

    Returns:
        Key -> parsed value (numbers, booleans, None, lists and tuples are converted).

    Raises:
        ConfigError: An option without ``=`` or with an empty key.
    """
    parsed = {}
    for option in options or []:
        key, sep, value = option.partition('=')
        if not sep or not key.strip():
            raise ConfigError(f'--cfg-options {option!r}: expected key=value, e.g. train_cfg.max_epochs=10')
        parsed[key.strip()] = DictAction._parse_iterable(value)
    return parsed


def dataloader_keys(cfg: Config) -> list[str]:
    """Top-level keys holding a dataloader: ``*_dataloader`` ones and those named by a hook (``dataloader=...``)."""
    named_by_hooks = {value for value in _strings_in([cfg.get('custom_hooks'), cfg.get('default_hooks')])
                      if value in cfg}
    return [key for key in cfg.keys()
            if (key.endswith('_dataloader') or key in named_by_hooks) and isinstance(cfg[key], dict)
            and isinstance(cfg[key].get('dataset'), dict)]


def keys_read_after_parsing(cfg: Config) -> set[str]:
    """Top-level keys that something reads after the config file was parsed (the runner, a hook, the tools)."""
    from mmengine.runner import Runner

    runner_arguments = set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}
    return runner_arguments | EXTRA_READ_KEYS | set(dataloader_keys(cfg))


def check_overrides(cfg: Config, options: dict) -> None:
    """Refuse overrides that the run would ignore; call before merging them.

    Refused: a top-level variable that only the parsing of the file reads (``data_root``, ``image_size``), a new
    top-level key, and a new key under ``model``, ``train_cfg``/``val_cfg``/``test_cfg`` or a dataloader that the
    registered class of that part does not accept (parts whose constructor takes ``**kwargs`` are not checked).

    Args:
        cfg: The config as parsed from the file.
        options: The parsed ``--cfg-options``.

    Raises:
        ConfigError: One line per refused key.
    """
    if not options:
        return
    tree = cfg.to_dict()
    read_keys = keys_read_after_parsing(cfg)
    loaders = set(dataloader_keys(cfg))
    problems = []
    for key in options:
        parts = key.split('.')
        top = parts[0]
        if top not in tree and top not in read_keys:
            problems.append(_unknown_top_level_key(tree, key, read_keys))
        elif top not in tree:
            continue
        elif top not in read_keys:
            problems.append(_parse_time_variable(tree, key, read_keys))
        else:
            problem = _unaccepted_nested_key(tree, parts, loaders)
            if problem is not None:
                problems.append(problem)
    if problems:
        raise ConfigError('\n'.join(problems))


def check_common_values(cfg: Config) -> None:
    """Check the settings most often changed on the command line: epochs, learning rates, batch sizes, workers.

    Raises:
        ConfigError: One line per bad value, naming the setting, the value found and what is expected.
    """
    problems = []
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' in train_cfg:
        problems += _whole_number_problem('train_cfg.max_epochs', train_cfg['max_epochs'], minimum=1)
    for path, value in _leaves(cfg.get('optim_wrapper') or {}, 'optim_wrapper'):
        if path.split('.')[-1] == 'lr' and (isinstance(value, bool) or not isinstance(value, (int, float))
                                            or value <= 0):
            problems.append(f'{path} must be a positive number (e.g. 0.005), got {value!r}')
    for key in dataloader_keys(cfg):
        loader = cfg[key]
        if 'batch_size' in loader:
            problems += _whole_number_problem(f'{key}.batch_size', loader['batch_size'], minimum=1)
        if 'num_workers' in loader:
            problems += _whole_number_problem(f'{key}.num_workers', loader['num_workers'], minimum=0)
    for name in ('logger', 'checkpoint'):
        hook = (cfg.get('default_hooks') or {}).get(name) or {}
        if 'interval' in hook:
            problems += _whole_number_problem(f'default_hooks.{name}.interval', hook['interval'], minimum=1)
    if problems:
        raise ConfigError('\n'.join(problems))


def set_data_location(cfg: Config, data_root: str | None = None, category: str | None = None) -> list[str]:
    """Set ``data_root`` and/or ``category`` of the dataset of every dataloader (wrapped datasets included).

    The top-level variables of the same name are updated too, so that the dumped config says what was used.

    Args:
        cfg: The config, changed in place.
        data_root: The new data root, or None to keep each one's.
        category: The new category, or None to keep each one's.

    Returns:
        The changed datasets, as config paths (``train_dataloader.dataset``, ...).

    Raises:
        ConfigError: The config has no dataloader with a dataset.
    """
    values = {name: value for name, value in (('data_root', data_root), ('category', category)) if value is not None}
    if not values:
        return []
    changed = []
    for key in dataloader_keys(cfg):
        for path, dataset in _leaf_datasets(cfg[key]['dataset'], f'{key}.dataset'):
            dataset.update(values)
            changed.append(path)
    if not changed:
        raise ConfigError(f'{", ".join(DATA_LOCATION_OPTIONS[name] for name in values)}: the config has no '
                          'dataloader with a dataset to set it on')
    for name, value in values.items():
        if name in cfg:
            cfg[name] = value
    return changed


def _leaf_datasets(dataset: dict, path: str) -> Iterator[tuple[str, dict]]:
    """The datasets that read files: wrappers (``ConcatDataset``, ``RepeatDataset``) are entered."""
    if isinstance(dataset.get('datasets'), list):
        for index, inner in enumerate(dataset['datasets']):
            yield from _leaf_datasets(inner, f'{path}.datasets.{index}')
    elif isinstance(dataset.get('dataset'), dict):
        yield from _leaf_datasets(dataset['dataset'], f'{path}.dataset')
    else:
        yield path, dataset


def _whole_number_problem(path: str, value, minimum: int) -> list[str]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return []
    return [f'{path} must be a whole number >= {minimum}, got {value!r}']


def _strings_in(node) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings_in(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings_in(value)


def _leaves(node, path: str) -> Iterator[tuple[str, object]]:
    """(dotted path, value) of every setting under ``node``; list items are addressed by index."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f'{path}.{key}')
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f'{path}.{index}')
    yield path, node


def _read_leaves(tree: dict, read_keys: set[str]) -> Iterator[tuple[str, object]]:
    for key in sorted(read_keys & set(tree)):
        yield from _leaves(tree[key], key)


def _listed(paths: list[str]) -> str:
    more = f' and {len(paths) - MAX_LISTED} more' if len(paths) > MAX_LISTED else ''
    return ', '.join(paths[:MAX_LISTED]) + more


def _unknown_top_level_key(tree: dict, key: str, read_keys: set[str]) -> str:
    top, rest = key.split('.')[0], key.split('.')[1:]
    suggestions = ['.'.join([match, *rest]) for match in difflib.get_close_matches(top, list(tree), n=3)]
    name = key.split('.')[-1]
    suggestions += [path for path, _ in _read_leaves(tree, read_keys) if path.split('.')[-1] == name]
    hint = f'; did you mean {_listed(list(dict.fromkeys(suggestions)))}?' if suggestions else ''
    return f'--cfg-options {key}: the config has no setting {top!r}, so the value would be ignored{hint}'


def _parse_time_variable(tree: dict, key: str, read_keys: set[str]) -> str:
    top = key.split('.')[0]
    what = (f'--cfg-options {key}: {top!r} is a variable of the config file, read only while the file is parsed, '
            'so changing it now has no effect')
    if top in DATA_LOCATION_OPTIONS:
        return f'{what}; use {DATA_LOCATION_OPTIONS[top]} (it sets every dataloader\'s dataset)'
    value = tree[top]
    uses = [] if value is None or isinstance(value, bool) else [
        path for path, leaf in _read_leaves(tree, read_keys) if type(leaf) is type(value) and leaf == value]
    if not uses:
        return f'{what}; nothing in the built config uses its value {value!r}'
    return (f'{what}; set the settings that use it instead ({_listed(uses)}), or write a config that inherits this '
            f'one (_base_) and sets {top}')


def _unaccepted_nested_key(tree: dict, parts: list[str], loaders: set[str]) -> str | None:
    """The problem with the first new key of ``parts`` when the part that would receive it does not accept it."""
    node = tree
    for depth, part in enumerate(parts):
        if isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                return f'--cfg-options {".".join(parts)}: {".".join(parts[:depth])} has no item {part}'
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict):
            return _check_argument(node, parts[:depth], part, parts, loaders)
        else:
            return None
    return None


def _check_argument(node: dict, path: list[str], argument: str, parts: list[str], loaders: set[str]) -> str | None:
    component = _component_class(node, path, loaders)
    if component is None:
        return None
    accepted = _arguments(component)
    if accepted is None or argument in accepted:
        return None
    close = difflib.get_close_matches(argument, sorted(accepted), n=3)
    hint = f'did you mean {", ".join(close)}?' if close else f'it accepts {", ".join(sorted(accepted))}'
    return (f'--cfg-options {".".join(parts)}: {component.__name__} ({".".join(path)}) has no argument '
            f'{argument!r}, so the value would be ignored; {hint}')


def _component_class(node: dict, path: list[str], loaders: set[str]) -> type | None:
    """The class built from ``node``, for the parts whose overrides are checked; None when unknown."""
    from mmad.registry import AGGREGATORS, DATA_SAMPLERS, DATASETS, LOOPS, MODELS, TRANSFORMS

    top = path[0]
    if top in loaders and len(path) == 1:
        from torch.utils.data import DataLoader
        return DataLoader
    if top == 'model':
        registries = (MODELS, AGGREGATORS)
    elif top in LOOP_KEYS:
        registries = (LOOPS, )
    elif top in loaders:
        context = next(part for part in reversed(path) if not part.isdigit())
        registries = {'pipeline': (TRANSFORMS, ), 'sampler': (DATA_SAMPLERS, ), 'batch_sampler': (DATA_SAMPLERS, ),
                      'dataset': (DATASETS, ), 'datasets': (DATASETS, )}.get(context, ())
    else:
        return None
    component_type = node.get('type')
    if isinstance(component_type, type):
        return component_type
    if not isinstance(component_type, str):
        return None
    return next((found for registry in registries if (found := registry.get(component_type)) is not None), None)


def _arguments(component: type) -> set[str] | None:
    """Names of the constructor's arguments; None when it takes ``**kwargs`` (anything may be accepted)."""
    try:
        parameters = inspect.signature(component).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return {parameter.name for parameter in parameters if parameter.kind is not inspect.Parameter.VAR_POSITIONAL}
