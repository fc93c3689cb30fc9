"""tools/dist_*.sh and tools/slurm_*.sh build the torchrun / srun command lines that OpenMMLab users expect."""
import os
import stat
import subprocess

import pytest
from process_helpers import TOOLS

RECORDER = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "{out}"
echo "PYTHONPATH=$PYTHONPATH" >> "{out}"
"""


def _recorder(path):
    path.write_text(RECORDER.format(out=path.with_suffix('.args')))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _run(script, args, env):
    base = {key: value for key, value in os.environ.items()
            if key not in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT', 'GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK',
                           'SRUN_ARGS', 'PYTHON')}
    return subprocess.run(['bash', str(TOOLS / script), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def _recorded(recorder):
    lines = recorder.with_suffix('.args').read_text().splitlines()
    return lines[:-1], lines[-1]


def test_dist_train_passes_the_node_layout_to_torchrun(tmp_path):
    python = _recorder(tmp_path / 'python')
    result = _run('dist_train.sh', ['cfg.py', '4', '--work-dir', 'w d', '--resume'],
                  dict(PYTHON=str(python), NNODES='2', NODE_RANK='1', MASTER_ADDR='10.0.0.5', PORT='29612'))
    assert result.returncode == 0, result.stderr
    args, pythonpath = _recorded(python)
    assert args == ['-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.5',
                    '--master_port=29612', '--nproc_per_node=4', str(TOOLS / 'train.py'), 'cfg.py', '--launcher',
                    'pytorch', '--work-dir', 'w d', '--resume']
    assert pythonpath.startswith(f'PYTHONPATH={TOOLS}/..')


def test_dist_test_defaults_to_one_local_node(tmp_path):
    python = _recorder(tmp_path / 'python')
    result = _run('dist_test.sh', ['cfg.py', 'epoch_200.pth', '2'], dict(PYTHON=str(python)))
    assert result.returncode == 0, result.stderr
    args, _ = _recorded(python)
    assert args == ['-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
                    '--master_port=29500', '--nproc_per_node=2', str(TOOLS / 'test.py'), 'cfg.py', 'epoch_200.pth',
                    '--launcher', 'pytorch']


@pytest.mark.parametrize('script, args', [('dist_train.sh', ['cfg.py']), ('dist_test.sh', ['cfg.py', 'ckpt.pth']),
                                          ('slurm_train.sh', ['part', 'job', 'cfg.py']),
                                          ('slurm_test.sh', ['part', 'job', 'cfg.py'])])
def test_missing_arguments_print_the_usage(script, args):
    result = _run(script, args, {})
    assert result.returncode == 2
    assert result.stderr.startswith('usage: ') and script in result.stderr


def test_slurm_train_starts_one_task_per_gpu(tmp_path):
    srun = _recorder(tmp_path / 'srun')
    env = dict(PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='6',
               SRUN_ARGS='--time=2-00:00:00 --qos=high')
    result = _run('slurm_train.sh', ['gpu', 'crd_bagel', 'cfg.py', 'work_dirs/bagel', '--amp'], env)
    assert result.returncode == 0, result.stderr
    args, pythonpath = _recorded(srun)
    assert args == ['--partition=gpu', '--job-name=crd_bagel', '--ntasks=16', '--cpus-per-task=6',
                    '--kill-on-bad-exit=1', '--gres=gpu:8', '--ntasks-per-node=8', '--time=2-00:00:00', '--qos=high',
                    'python', '-u', str(TOOLS / 'train.py'), 'cfg.py', '--work-dir=work_dirs/bagel',
                    '--launcher=slurm', '--amp']
    assert pythonpath.startswith(f'PYTHONPATH={TOOLS}/..')


def test_slurm_test_on_cpu_nodes_asks_for_no_gpu(tmp_path):
    srun = _recorder(tmp_path / 'srun')
    env = dict(PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='4', GPUS_PER_NODE='0')
    result = _run('slurm_test.sh', ['cpu', 'test_bagel', 'cfg.py', 'epoch_200.pth'], env)
    assert result.returncode == 0, result.stderr
    args, _ = _recorded(srun)
    assert args == ['--partition=cpu', '--job-name=test_bagel', '--ntasks=4', '--cpus-per-task=5',
                    '--kill-on-bad-exit=1', 'python', '-u', str(TOOLS / 'test.py'), 'cfg.py', 'epoch_200.pth',
                    '--launcher=slurm']
