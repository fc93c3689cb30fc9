"""Fixtures shared by every test package."""
import socket

import pytest
import torch.distributed as torch_dist


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
