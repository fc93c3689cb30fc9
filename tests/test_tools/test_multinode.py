"""Two "nodes" on localhost: two tools/dist_train.sh invocations (NNODES=2, NODE_RANK 0 and 1, static rendezvous)."""
import pytest
import torch
from process_helpers import TOOLS, free_port, run_all, tool_env
from tiny_config import write_tiny_config

from mmad.utils import load_from_local_safely

pytestmark = pytest.mark.slow  # two 1-process torchrun "nodes" training together


def test_two_nodes_train_together(data_root, tmp_path):
    config = write_tiny_config(tmp_path / 'tiny_two_nodes.py', data_root,
                               extra_hooks=(f"dict(type='DumpRankStateHook', out_dir='{tmp_path / 'dumps'}')", ),
                               extra='train_cfg = dict(max_epochs=1)')
    port = str(free_port())
    commands = []
    for node_rank in (0, 1):
        env = tool_env(NNODES='2', NODE_RANK=str(node_rank), MASTER_ADDR='127.0.0.1', PORT=port)
        command = ['bash', str(TOOLS / 'dist_train.sh'), str(config), '1', '--work-dir', str(tmp_path / 'work')]
        commands.append((command, tmp_path, env))
    finished = run_all(commands)
    for node_rank, result in enumerate(finished):
        assert result.returncode == 0, f'node {node_rank}:\n{result.output[-6000:]}'
    assert 'Distributed training: True' in finished[0].output
    rank0 = torch.load(tmp_path / 'dumps' / 'rank0.pt', weights_only=True)['state_dict']
    rank1 = torch.load(tmp_path / 'dumps' / 'rank1.pt', weights_only=True)['state_dict']
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(value, rank1[key]) for key, value in rank0.items())
    checkpoint = load_from_local_safely(str(tmp_path / 'work' / 'epoch_1.pth'))
    assert checkpoint['meta']['epoch'] == 1
    assert checkpoint['state_dict'].keys() == rank0.keys(), 'keys of the unwrapped model, loadable in 1 process'
    assert all(torch.equal(checkpoint['state_dict'][key], value) for key, value in rank0.items())
