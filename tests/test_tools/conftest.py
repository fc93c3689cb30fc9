"""Shared data and runs of the tool tests: one tiny synthetic MVTec 3D-AD category, one tools/train.py +
tools/test.py run and one 2-process training per session."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from process_helpers import TOOLS, free_port, python_tool, run_ok, tool_env
from tiny_config import NUM_TEST, NUM_TRAIN, NUM_VAL, earlier_run, write_tiny_config

from mmad.datasets.synthetic import make_synthetic_mvtec3d


@pytest.fixture(scope='session')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic_mvtec3d')
    make_synthetic_mvtec3d(root, 'synthetic', height=64, width=64, num_train=NUM_TRAIN, num_val=NUM_VAL,
                           num_test_per_defect=NUM_TEST // 3, defect_types=('color', 'dent'))
    return root


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory, data_root) -> dict:
    """tools/train.py (2 epochs of the tiny config, --overwrite into a work dir holding an earlier run's checkpoints),
    then tools/test.py --show-dir of its last checkpoint, both with --tensorboard where it is installed.

    The tests only read it: the config, the training's work dir and console output, the test's work dir and panels.
    """
    folder = tmp_path_factory.mktemp('tiny_run')
    config = write_tiny_config(folder / 'tiny.py', data_root)
    train_dir, test_dir = earlier_run(folder / 'train'), folder / 'test'
    tensorboard = ['--tensorboard'] if importlib.util.find_spec('tensorboard') else []
    train = run_ok(python_tool('train.py', str(config), '--work-dir', str(train_dir), '--overwrite', *tensorboard),
                   cwd=folder)
    checkpoint = train_dir / 'epoch_2.pth'
    run_ok(python_tool('test.py', str(config), str(checkpoint), '--work-dir', str(test_dir), *tensorboard,
           '--show-dir', str(folder / 'show')), cwd=folder)
    return dict(config=config, train_dir=train_dir, test_dir=test_dir, checkpoint=checkpoint, show_dir=folder / 'show',
                train_output=train.output)


@pytest.fixture(scope='session')
def ddp_run(tmp_path_factory, data_root) -> Path:
    """A 2-process torchrun training (tools/dist_train.sh) of the tiny config; each rank dumps its final state."""
    folder = tmp_path_factory.mktemp('ddp_train')
    config = write_tiny_config(folder / 'tiny_ddp.py', data_root,
                               extra_hooks=(f"dict(type='DumpRankStateHook', out_dir='{folder / 'dumps'}')", ))
    finished = run_ok(['bash', str(TOOLS / 'dist_train.sh'), str(config), '2', '--work-dir', str(folder / 'work')],
                      cwd=folder, env=tool_env(PORT=str(free_port())))
    (folder / 'train_output.txt').write_text(finished.output)
    return folder
