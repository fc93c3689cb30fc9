"""Shared data and configs of the tool tests: one tiny synthetic MVTec 3D-AD category per session."""
from __future__ import annotations

from pathlib import Path

import pytest
from process_helpers import TOOLS, free_port, run_ok, tool_env
from tiny_config import NUM_TEST, NUM_TRAIN, NUM_VAL, write_tiny_config

from mmad.datasets.synthetic import make_synthetic_mvtec3d


@pytest.fixture(scope='session')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic_mvtec3d')
    make_synthetic_mvtec3d(root, 'synthetic', height=64, width=64, num_train=NUM_TRAIN, num_val=NUM_VAL,
                           num_test_per_defect=NUM_TEST // 3, defect_types=('color', 'dent'))
    return root


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
