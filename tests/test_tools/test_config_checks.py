"""Command-line overrides that would be ignored are refused; --data-root/--category reach every dataloader."""
import pytest
from mmengine.config import Config
from process_helpers import REPO, load_tool

from mmad.utils import (
    ConfigError,
    check_common_values,
    check_overrides,
    parse_cfg_options,
    register_all_modules,
    set_data_location,
)
from mmad.utils.tool_args import config_path_problem

DEMO_CONFIG = str(REPO / 'configs' / 'crd' / 'crd_demo_synthetic.py')
LOADERS = ('train_dataloader', 'val_stats_dataloader', 'test_dataloader')

train_tool = load_tool('train.py')
test_tool = load_tool('test.py')


@pytest.fixture(scope='module')
def demo_cfg() -> Config:
    register_all_modules()
    return Config.fromfile(DEMO_CONFIG)


def refusal(cfg: Config, *options: str) -> str:
    with pytest.raises(ConfigError) as raised:
        check_overrides(cfg, parse_cfg_options(list(options)))
    return str(raised.value)


def test_top_level_variables_read_only_while_parsing_are_refused(demo_cfg):
    message = refusal(demo_cfg, 'data_root=/data/other', 'category=cookie', 'image_size=128')
    lines = message.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("--cfg-options data_root: 'data_root' is a variable of the config file")
    assert 'use --data-root' in lines[0]
    assert 'use --category' in lines[1]
    # image_size: the settings that use its value are named instead.
    assert 'train_dataloader.dataset.pipeline.2.size' in lines[2] and 'sets image_size' in lines[2]


def test_misspelled_and_unknown_keys_are_refused_with_the_closest_names(demo_cfg):
    assert 'did you mean train_cfg.max_epochs' in refusal(demo_cfg, 'trian_cfg.max_epochs=1')
    assert 'did you mean train_cfg.max_epochs' in refusal(demo_cfg, 'max_epochs=-1')
    assert 'did you mean optim_wrapper.optimizer.lr' in refusal(demo_cfg, 'lr=fast')


def test_new_keys_a_component_does_not_accept_are_refused(demo_cfg):
    assert ("EpochBasedTrainLoop (train_cfg) has no argument 'max_epoch'" in
            refusal(demo_cfg, 'train_cfg.max_epoch=3'))
    assert ("TimmEncoder (model.teacher) has no argument 'pretrianed'" in
            refusal(demo_cfg, 'model.teacher.pretrianed=True'))
    assert "DataLoader (val_stats_dataloader) has no argument 'batchsize'" in refusal(
        demo_cfg, 'val_stats_dataloader.batchsize=2')
    assert "has no argument 'sise'" in refusal(demo_cfg, 'test_dataloader.dataset.pipeline.3.sise=64')


def test_accepted_overrides_pass(demo_cfg):
    check_overrides(demo_cfg, parse_cfg_options([
        'train_cfg.max_epochs=3', 'train_cfg.val_interval=2', 'model.teacher.checkpoint=/w.pth',
        'test_dataloader.dataset.data_root=/d', 'train_dataloader.pin_memory=True', 'work_dir=/tmp/x',
        'test_dataloader.dataset.pipeline.3.size=64']))


@pytest.mark.parametrize('option, expected', [
    ('train_cfg.max_epochs=-1', 'train_cfg.max_epochs must be a whole number >= 1, got -1'),
    ('train_cfg.max_epochs=0', 'train_cfg.max_epochs must be a whole number >= 1, got 0'),
    ('train_cfg.max_epochs=abc', "train_cfg.max_epochs must be a whole number >= 1, got 'abc'"),
    ('optim_wrapper.optimizer.lr=fast', "optim_wrapper.optimizer.lr must be a positive number (e.g. 0.005), got "
     "'fast'"),
    ('train_dataloader.batch_size=0', 'train_dataloader.batch_size must be a whole number >= 1, got 0'),
    ('test_dataloader.num_workers=-2', 'test_dataloader.num_workers must be a whole number >= 0, got -2'),
])
def test_unusable_values_are_one_line_errors(option, expected):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.merge_from_dict(parse_cfg_options([option]))
    with pytest.raises(ConfigError) as raised:
        check_common_values(cfg)
    assert str(raised.value) == expected


def test_option_without_equals_sign_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^--cfg-options 'train_cfg.max_epochs': expected key=value"):
        parse_cfg_options(['train_cfg.max_epochs'])
    assert parse_cfg_options(['a.b=1', 'c=[1,2]', 'd=x=y']) == {'a.b': 1, 'c': [1, 2], 'd': 'x=y'}


def test_data_root_and_category_reach_every_dataloader_and_wrapped_datasets(demo_cfg):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.extra_dataloader = dict(batch_size=1, dataset=dict(type='ConcatDataset', datasets=[
        dict(type='MVTec3DDataset', data_root='a', category='x'),
        dict(type='RepeatDataset', times=2, dataset=dict(type='MVTec3DDataset', data_root='b', category='y'))]))
    changed = set_data_location(cfg, '/data/new', 'cookie')
    assert set(changed) == {f'{key}.dataset' for key in LOADERS} | {
        'extra_dataloader.dataset.datasets.0', 'extra_dataloader.dataset.datasets.1.dataset'}
    for key in LOADERS:
        assert (cfg[key].dataset.data_root, cfg[key].dataset.category) == ('/data/new', 'cookie')
    inner = cfg.extra_dataloader.dataset.datasets
    assert (inner[0].data_root, inner[1].dataset.category) == ('/data/new', 'cookie')
    assert (cfg.data_root, cfg.category) == ('/data/new', 'cookie')


def test_tools_take_data_root_and_category_for_every_dataset(data_root, capsys):
    # The config's own data root does not exist: only --data-root makes the datasets build.
    common = ['--data-root', str(data_root), '--category', 'synthetic', '--dry-run', '--cfg-options',
              'model.teacher.pretrained=False']
    train_tool.main([DEMO_CONFIG, *common])
    test_tool.main([DEMO_CONFIG, 'missing.pth', *common])
    out = capsys.readouterr().out
    assert 'train_dataloader 8 samples, val_stats_dataloader 3 samples, test_dataloader 9 samples' in out
    assert 'model CRD built. Nothing was trained.' in out
    assert 'val_stats_dataloader 3 samples, test_dataloader 9 samples; model CRD built. Nothing was tested' in out


@pytest.mark.parametrize('tool', [train_tool, test_tool])
def test_tools_refuse_ignored_overrides_before_building_anything(tool, tmp_path):
    args = [DEMO_CONFIG] + (['x.pth'] if tool is test_tool else [])
    with pytest.raises(SystemExit) as exited:
        tool.main([*args, '--work-dir', str(tmp_path), '--cfg-options', 'image_size=100'])
    assert "--cfg-options image_size: 'image_size' is a variable of the config file" in str(exited.value.code)
    with pytest.raises(SystemExit) as exited:
        tool.main([*args, '--cfg-options', 'lr=fast'])
    assert 'did you mean optim_wrapper.optimizer.lr' in str(exited.value.code)


def test_config_path_typo_suggests_the_closest_configs(tmp_path):
    assert config_path_problem(DEMO_CONFIG) is None
    message = config_path_problem('configs/crd/crd_mvtec3d_bagle.py')
    assert message.startswith('config file configs/crd/crd_mvtec3d_bagle.py does not exist; did you mean ')
    assert 'configs/crd/crd_mvtec3d_bagel.py' in message
    assert 'configs/crd/crd_demo_synthetc.py' not in message
    assert 'configs/crd/crd_demo_synthetic.py' in config_path_problem('crd_demo_synthetc.py')
    assert 'is a folder, not a config file' in config_path_problem(str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        train_tool.main(['configs/crd/crd_mvtec3d_bagle.py'])
    assert str(exited.value.code).startswith('train.py: error: config file configs/crd/crd_mvtec3d_bagle.py does not')


def test_a_config_without_the_safe_checkpoint_hook_gets_it(tmp_path):
    """Strict checkpoint loading lives in SafeCheckpointHook: a config replacing custom_hooks must not lose it."""
    config = tmp_path / 'no_safe_hook.py'
    config.write_text(f"_base_ = ['{DEMO_CONFIG}']\ncustom_hooks = [dict(type='ValidationStatisticsHook', "
                      "dataloader='val_stats_dataloader')]\n")
    args = test_tool.parse_args([str(config), 'model.pth'])
    cfg = test_tool.merge_args(args)
    assert [hook['type'] for hook in cfg.custom_hooks] == ['ValidationStatisticsHook', 'SafeCheckpointHook']
    kept = test_tool.merge_args(test_tool.parse_args([DEMO_CONFIG, 'model.pth']))
    assert [hook['type'] for hook in kept.custom_hooks].count('SafeCheckpointHook') == 1
