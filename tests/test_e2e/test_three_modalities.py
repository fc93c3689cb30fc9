"""Three branches (rgb + depth + normals) train and test on generated MVTec 3D-AD- and Eyecandies-format data.

The shipped three-modality configs, shrunk: resnet18 layers 1-2 with random weights as the teacher, 32x32 inputs,
one epoch of two steps. Bad modality input fails with one line naming what is wrong.
"""
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmad.datasets.synthetic import make_synthetic_eyecandies, make_synthetic_mvtec3d
from mmad.datasets.synthetic.eyecandies import eyecandies_focal_length
from mmad.datasets.transforms import uncached_steps
from mmad.utils import read_config, register_all_modules

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'crd'
MODALITIES = ['rgb', 'depth', 'normals']
SOURCE_SIZE, INPUT_SIZE = 48, 32
DATASETS = {
    'mvtec3d': ('crd_mvtec3d_rgbdn_bagel.py', 'synthetic'),
    'eyecandies': ('crd_eyecandies_rgbdn_candy_cane.py', 'SyntheticCandy'),
}


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp('three_modalities')
    counts = dict(num_train=4, num_val=2, num_test_per_defect=1, seed=2)
    make_synthetic_mvtec3d(root / 'mvtec3d', 'synthetic', height=SOURCE_SIZE, width=SOURCE_SIZE, **counts)
    make_synthetic_eyecandies(root / 'eyecandies', 'SyntheticCandy', size=SOURCE_SIZE, **counts)
    return dict(mvtec3d=root / 'mvtec3d', eyecandies=root / 'eyecandies')


def tiny_config(name: str, data_root: Path, work_dir: Path) -> Config:
    """The shipped config at 32x32 with a random resnet18 teacher, batch 2, one epoch."""
    config_name, category = DATASETS[name]
    cfg = read_config(CONFIG_DIR / config_name)
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.model.teacher = dict(type='TimmEncoder', model_name='resnet18', pretrained=False, strides=(4, 8))
    cfg.model.bottleneck.bottleneck_stride = 16
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.custom_hooks = [dict(type='SafeCheckpointHook'),
                        dict(type='ValidationStatisticsHook', dataloader='val_stats_dataloader', show_progress=False)]
    cfg.test_evaluator.out_dir = str(work_dir)
    for key in ('train_dataloader', 'val_stats_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=str(data_root), category=category)
        for step in uncached_steps(loader.dataset.pipeline):
            if 'size' in step:
                step.size = INPUT_SIZE
            if step.type == 'LoadXYZFromDepthFile':
                step.focal_length = eyecandies_focal_length(SOURCE_SIZE)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('name', list(DATASETS))
def test_three_branches_train_and_test(name, data_roots, tmp_path):
    register_all_modules()
    torch.set_num_threads(2)
    runner = Runner.from_cfg(tiny_config(name, data_roots[name], tmp_path / 'train'))
    assert runner.model.modalities == tuple(MODALITIES)
    runner.train()
    checkpoint = tmp_path / 'train' / 'epoch_1.pth'
    assert checkpoint.is_file()
    test_cfg = tiny_config(name, data_roots[name], tmp_path / 'test')
    test_cfg.load_from = str(checkpoint)
    Runner.from_cfg(test_cfg).test()
    metrics = json.loads((tmp_path / 'test' / 'metrics.json').read_text())
    assert [key for key in metrics if key not in ('notes', 'run')] == ['fused', *MODALITIES]
    for source in ('fused', *MODALITIES):
        values = metrics[source]['all']
        assert 0.0 <= values['I-AUROC'] <= 1.0 and 0.0 <= values['P-AUROC'] <= 1.0


def test_a_pipeline_without_a_modality_the_model_lists_names_it(data_roots, tmp_path):
    register_all_modules()
    cfg = tiny_config('mvtec3d', data_roots['mvtec3d'], tmp_path)
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[:] = [step for step in uncached_steps(pipeline) if step.type != 'NormalsFromDepth']
    with pytest.raises(KeyError, match=r"PackADInputs: modality 'normals' is missing for good_000; add the transform "
                                       'that produces it to the pipeline'):
        Runner.from_cfg(cfg).train()


def test_a_missing_file_is_one_line_naming_it(data_roots, tmp_path):
    register_all_modules()
    cfg = tiny_config('eyecandies', data_roots['eyecandies'], tmp_path)
    runner = Runner.from_cfg(cfg)
    dataset = runner.train_dataloader.dataset
    info_path = Path(dataset.get_data_info(0)['depth_info_path'])
    moved = tmp_path / info_path.name
    info_path.rename(moved)
    try:
        with pytest.raises(FileNotFoundError) as error:
            dataset[0]
    finally:
        moved.rename(info_path)
    assert str(error.value) == f'{info_path} does not exist'
