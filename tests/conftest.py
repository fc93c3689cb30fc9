"""Fixtures shared by every test package."""
import os
import socket

import pytest
import torch.distributed as torch_dist
from parallel_scheduling import (  # noqa: F401 (the hooks of pytest-xdist's scheduling)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_xdist_make_scheduler,
)
from tiny_crd_model import train_tiny_model


@pytest.fixture
def single_process_group():
    """A gloo process group of world size 1 on a free local port, destroyed afterwards unless the test did."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    yield
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


@pytest.fixture(autouse=True, scope='session')
def derived_cache_dir(tmp_path_factory):
    """Point the default cache of ``CachedTransforms`` (``$MMAD_CACHE_DIR``) at a folder of the test run."""
    previous = os.environ.get('MMAD_CACHE_DIR')
    os.environ['MMAD_CACHE_DIR'] = str(tmp_path_factory.mktemp('derived_cache'))
    yield
    if previous is None:
        del os.environ['MMAD_CACHE_DIR']
    else:
        os.environ['MMAD_CACHE_DIR'] = previous


@pytest.fixture(scope='session')
def tiny_crd(tmp_path_factory) -> dict:
    """The tiny CRD of tiny_crd_model.py, trained once per session; its tests only read what it wrote.

    Returns:
        ``dict(config=..., checkpoint=..., data_root=..., category_dir=..., work_dir=...)`` (paths).
    """
    return train_tiny_model(tmp_path_factory.mktemp('tiny_crd'))
