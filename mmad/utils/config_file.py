"""Reading config files whose text is laid out once, not at every use."""
from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

# Layouts of recent configs (key: the config's values as repr), oldest first.
_LAID_OUT: dict[str, str] = {}
_LAID_OUT_SIZE = 16


class OnceFormattedConfig(Config):
    """A ``Config`` whose ``pretty_text`` runs mmengine's layout (yapf) once per distinct content.

    A runner turns its config into text several times per run (the log, the dumped config, the visualiser's copy,
    the runtime info and every checkpoint's meta) and mmengine formats the whole text with yapf each time: measured
    on a 2-core CPU, a one-epoch train plus test of ``configs/folder/crd_folder_rgbd.py`` spent 3.7 of its 9.2 s
    there. The text is the same as mmengine's; it is computed again whenever the values change.
    """

    @property
    def pretty_text(self) -> str:
        """The config as mmengine's text, laid out on the first call for these values."""
        key = repr(self.to_dict())
        if key not in _LAID_OUT:
            if len(_LAID_OUT) >= _LAID_OUT_SIZE:
                del _LAID_OUT[next(iter(_LAID_OUT))]
            _LAID_OUT[key] = super().pretty_text
        return _LAID_OUT[key]


def read_config(path: str | Path) -> OnceFormattedConfig:
    """``Config.fromfile(path)`` as an :class:`OnceFormattedConfig` (copies, e.g. the runner's, stay one).

    Args:
        path: A config file (``.py``, ``.json``, ``.yaml``); ``_base_`` files are merged as by ``Config.fromfile``.

    Returns:
        The loaded config with everything ``fromfile`` set on it.
    """
    loaded = Config.fromfile(str(path))
    cfg = OnceFormattedConfig.__new__(OnceFormattedConfig)
    cfg.__dict__.update(loaded.__dict__)  # as Config.__copy__ does: values, text, file name, variables, imports
    return cfg
