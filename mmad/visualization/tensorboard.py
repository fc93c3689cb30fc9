"""TensorBoard as an opt-in vis backend (``tools/train.py --tensorboard``, ``tools/test.py --tensorboard``)."""
from __future__ import annotations

import importlib.util

from mmengine.config import Config

from mmad.utils.config_checks import ConfigError

TENSORBOARD_BACKEND = dict(type='TensorboardVisBackend')


def enable_tensorboard(cfg: Config) -> Config:
    """Add mmengine's ``TensorboardVisBackend`` to the config's visualizer and the test metrics hook.

    Training losses and learning rates reach TensorBoard through mmengine's ``LoggerHook``; the test metrics through
    :class:`~mmad.engine.hooks.visualization_hook.TestMetricsVisualizerHook`. Event files go to
    ``<work_dir>/<timestamp>/vis_data``. Calling it twice adds nothing more.

    Args:
        cfg: The config, changed in place.

    Returns:
        The config.

    Raises:
        ConfigError: tensorboard is not installed (the message names the extra that installs it).
    """
    if importlib.util.find_spec('tensorboard') is None:
        raise ConfigError("--tensorboard needs the tensorboard package, which is not installed; install it "
                                  "with pip install -e '.[tensorboard]' (or pip install tensorboard)")
    visualizer = cfg.setdefault('visualizer', dict(type='Visualizer'))
    backends = visualizer.setdefault('vis_backends', [])
    if not any(backend.get('type') == TENSORBOARD_BACKEND['type'] for backend in backends):
        backends.append(dict(TENSORBOARD_BACKEND))
    hooks = cfg.setdefault('custom_hooks', [])
    if not any(hook.get('type') == 'TestMetricsVisualizerHook' for hook in hooks):
        hooks.append(dict(type='TestMetricsVisualizerHook'))
    return cfg
