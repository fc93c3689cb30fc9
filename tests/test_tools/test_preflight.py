"""Before the first epoch every dataset of the run and the model are built; all problems are reported together."""
import pytest
import timm
import torch
from mmengine.config import Config
from process_helpers import REPO, load_tool
from tiny_config import write_tiny_config

from mmad.registry import MODELS
from mmad.utils import PreflightError, preflight_check, register_all_modules, required_input_multiple, run_dataloaders

train_tool = load_tool('train.py')
test_tool = load_tool('test.py')
MISSING_TEACHER = "model = dict(teacher=dict(_delete_=True, type='MissingWeightsEncoder', weights='/weights/wrn.pth'))"


def test_missing_data_and_missing_weights_are_reported_together_before_training(data_root, tmp_path):
    config = write_tiny_config(tmp_path / 'tiny.py', data_root, extra=MISSING_TEACHER)
    work_dir = tmp_path / 'work'
    with pytest.raises(SystemExit) as exited:
        train_tool.main([str(config), '--work-dir', str(work_dir), '--cfg-options',
                         f'val_stats_dataloader.dataset.data_root={tmp_path / "no_validation_data"}'])
    message = str(exited.value.code)
    assert message.startswith('train.py: The run cannot start (2 problems):')
    lines = message.splitlines()
    assert lines[1].startswith('  - val_stats_dataloader.dataset: FileNotFoundError: ')
    assert str(tmp_path / 'no_validation_data') in lines[1]
    assert lines[-1] == ('  - model: FileNotFoundError: teacher weights /weights/wrn.pth not found and the hub is '
                         'unreachable')
    assert not work_dir.exists() or not any(work_dir.glob('*.pth'))


def test_every_dataset_of_the_run_is_checked(data_root, tmp_path):
    register_all_modules()
    cfg = Config.fromfile(write_tiny_config(tmp_path / 'tiny.py', data_root))
    assert run_dataloaders(cfg, training=True) == ['train_dataloader', 'val_stats_dataloader', 'test_dataloader']
    assert run_dataloaders(cfg, training=False) == ['val_stats_dataloader', 'test_dataloader']
    cfg.test_dataloader.dataset.category = 'missing_category'
    cfg.train_dataloader.dataset.split = 'validation'
    cfg.val_stats_dataloader.dataset.data_root = str(tmp_path)
    with pytest.raises(PreflightError) as raised:
        preflight_check(cfg, run_dataloaders(cfg, training=True), build_model=False)
    problems = [line for line in str(raised.value).splitlines() if line.startswith('  - ')]
    assert [problem.split(':')[0] for problem in problems] == ['  - val_stats_dataloader.dataset',
                                                               '  - test_dataloader.dataset']
    assert 'missing_category' in problems[1]
    report = preflight_check(cfg, ['train_dataloader'], build_model=False)
    assert report.dataset_sizes == {'train_dataloader': 3}


@pytest.mark.parametrize('image_size', [100, 8])
def test_image_size_the_model_cannot_take_names_the_setting_and_valid_values(data_root, tmp_path, image_size):
    config = write_tiny_config(tmp_path / 'tiny.py', data_root)
    config.write_text(config.read_text().replace('image_size = 32', f'image_size = {image_size}'))
    with pytest.raises(SystemExit) as exited:
        test_tool.main([str(config), 'unused.pth', '--dry-run'])
    message = str(exited.value.code)
    # The tiny model: teacher strides (4, 8), bottleneck stride 16 -> multiples of 16.
    assert (f'  - image_size {image_size}: the samples of val_stats_dataloader, test_dataloader are '
            f'{image_size}x{image_size}, but height and width must be multiples of 16 (') in message
    assert 'BottleneckProjection' in message and 'TimmEncoder, strides (4, 8)' in message
    nearest = max(16, image_size // 16 * 16)
    assert f'valid values: 16, 32, 48, ... (nearest: {nearest}, {nearest + 16})' in message


@pytest.mark.parametrize('bottleneck_stride', [32, 64, None])
def test_required_multiple_is_derived_from_the_teacher_and_bottleneck(bottleneck_stride):
    register_all_modules()
    cfg = Config.fromfile(str(REPO / 'configs' / 'crd' / 'crd_demo_synthetic.py'))
    cfg.model.teacher.pretrained = False
    if bottleneck_stride is None:
        cfg.model.crossmodal_filter = False  # no bottleneck projection: the teacher's strides decide
    else:
        cfg.model.bottleneck = dict(type='BottleneckProjection', bottleneck_stride=bottleneck_stride)
    model = MODELS.build(cfg.model)
    multiple, reasons = required_input_multiple(model)
    strides = model.teacher.spec.strides
    assert multiple == (bottleneck_stride or max(strides))
    assert reasons[0] == f'teacher (TimmEncoder, strides {strides}) needs {max(strides)}'


def test_model_is_checked_on_the_meta_device_with_its_teacher_weights(data_root, tmp_path):
    """The pre-flight model holds no real parameters, yet the teacher's weights file is read and checked."""
    register_all_modules()
    cfg = Config.fromfile(write_tiny_config(tmp_path / 'tiny.py', data_root))
    weights = timm.create_model('resnet18').state_dict()
    cfg.model.teacher.checkpoint = str(tmp_path / 'resnet18.pth')
    torch.save(weights, cfg.model.teacher.checkpoint)
    report = preflight_check(cfg, ['test_dataloader'])
    parameters = list(report.model.parameters())
    assert parameters and all(parameter.is_meta for parameter in parameters)
    assert sum(p.numel() for p in parameters) == sum(p.numel() for p in MODELS.build(cfg.model).parameters())
    weights['layer1.0.conv1.weight'] = torch.zeros(64, 64, 1, 1)
    torch.save(weights, cfg.model.teacher.checkpoint)
    with pytest.raises(PreflightError, match=r"(?s)model: RuntimeError: .*resnet18\.pth.*layer1\.0\.conv1\.weight"):
        preflight_check(cfg, ['test_dataloader'])
