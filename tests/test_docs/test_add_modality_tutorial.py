"""docs/tutorials/add_modality.md, performed as written: an ir modality from a user module, trained with rgb + depth.

The tutorial's code blocks (``my_ir.py`` and the config) are extracted from the markdown and written into a
temporary user folder, its ``tools/train.py`` / ``tools/test.py`` commands run in-process with ``--data-root``
pointing at generated data, and nothing under ``mmad/`` is touched. The generated ``ir/`` files carry defects
visible in the infrared image only (``test/hot_spot``: rgb and xyz of intact objects, a hot spot in ir), so the ir
branch must find them and the rgb branch cannot.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch

from mmad.datasets.synthetic import make_synthetic_mvtec3d
from mmad.datasets.synthetic.rendering import render_synthetic_sample

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / 'docs' / 'tutorials' / 'add_modality.md'
CODE_BLOCK = re.compile(r'```python title="([^"]+)"\n(.*?)```', re.DOTALL)
TOOL_COMMAND = re.compile(r'python (tools/(?:train|test)\.py) ([^\n]*)')
CATEGORY, SIZE, SEED = 'synthetic', 64, 3
NUM_TRAIN, NUM_VAL, NUM_TEST = 24, 4, 8
HOT_SPOT = 'hot_spot'


def tutorial_files() -> dict[str, str]:
    """The tutorial's titled python blocks: file name -> content."""
    return {name: code for name, code in CODE_BLOCK.findall(TUTORIAL.read_text())}


def tutorial_commands() -> list[tuple[str, list[str]]]:
    """(tool path, arguments) of each tools/*.py command of the tutorial, continuation lines joined."""
    text = TUTORIAL.read_text().replace('\\\n', ' ')
    return [(tool, shlex.split(args)) for tool, args in TOOL_COMMAND.findall(text)]


def load_tool(relative_path: str):
    """Import a script of tools/ (not a package) as a module."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(f'mmad_tutorial_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def infrared(xyz: np.ndarray, rng: np.random.Generator, hot_spot: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 16-bit infrared-like image of a sample (warmer where the object is higher) and its hot-spot mask.

    Args:
        xyz: float32 (H, W, 3) point cloud, z = distance to the camera, 0 where missing.
        rng: Random generator (sensor noise, hot-spot position).
        hot_spot: Whether to add a hot spot (a saturated disc) on the object.

    Returns:
        uint16 (H, W) image and uint8 (H, W) mask (255 on the hot spot).
    """
    z = xyz[..., 2]
    valid = z > 0
    far = z[valid].max()
    height = np.where(valid, far - z, 0.0) / max(float(np.ptp(z[valid])), 1e-6)
    image = 0.2 + 0.4 * height + rng.normal(0.0, 0.01, z.shape)
    mask = np.zeros(z.shape, np.uint8)
    if hot_spot:
        rows, cols = np.nonzero(height > 0.5 * height.max())
        pick = rng.integers(len(rows))
        yy, xx = np.mgrid[:z.shape[0], :z.shape[1]]
        disc = (np.hypot(yy - rows[pick], xx - cols[pick]) <= z.shape[0] / 8).astype(np.float64)
        image = np.maximum(image, 0.95 * cv2.GaussianBlur(disc, (5, 5), 1.0))
        mask[disc > 0] = 255
    return (np.clip(image, 0.0, 1.0) * 65535).round().astype(np.uint16), mask


def make_ir_category(root: Path) -> Path:
    """Synthetic MVTec 3D-AD data with an ir/ folder per sample folder and a test/hot_spot defect folder."""
    category_dir = make_synthetic_mvtec3d(root, CATEGORY, height=SIZE, width=SIZE, num_train=NUM_TRAIN,
                                          num_val=NUM_VAL, num_test_per_defect=NUM_TEST, seed=SEED,
                                          defect_types=('color', ))
    hot_dir = category_dir / 'test' / HOT_SPOT
    for modality in ('rgb', 'xyz', 'gt'):
        (hot_dir / modality).mkdir(parents=True)
    for index in range(NUM_TEST):
        # Intact objects not in test/good: rgb and xyz look normal, only ir shows the defect.
        sample = render_synthetic_sample(CATEGORY, 'test', 'good', NUM_TEST + index, height=SIZE, width=SIZE,
                                         seed=SEED)
        cv2.imwrite(str(hot_dir / 'rgb' / f'{index:03d}.png'), cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR))
        tifffile.imwrite(hot_dir / 'xyz' / f'{index:03d}.tiff', sample.xyz, photometric='rgb')
    rng = np.random.default_rng(SEED)
    for xyz_path in sorted(category_dir.glob('*/*/xyz/*.tiff')):
        sample_dir = xyz_path.parent.parent
        image, mask = infrared(tifffile.imread(xyz_path), rng, hot_spot=sample_dir.name == HOT_SPOT)
        (sample_dir / 'ir').mkdir(exist_ok=True)
        cv2.imwrite(str(sample_dir / 'ir' / f'{xyz_path.stem}.png'), image)
        if sample_dir.name == HOT_SPOT:
            cv2.imwrite(str(sample_dir / 'gt' / f'{xyz_path.stem}.png'), mask)
    return category_dir


@pytest.fixture(scope='module')
def user_dir(tmp_path_factory) -> Path:
    """A user's folder holding the tutorial's files, importable, with the repository's configs/_base_ beside."""
    user = tmp_path_factory.mktemp('user')
    for name, code in tutorial_files().items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(code)
    (user / 'configs' / '_base_').symlink_to(REPO / 'configs' / '_base_')
    sys.path.insert(0, str(user))
    yield user
    sys.path.remove(str(user))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('ir_data')
    make_ir_category(root)
    return root


def test_tutorial_has_the_module_the_config_and_both_commands():
    files = tutorial_files()
    assert list(files) == ['my_ir.py', 'configs/my_ir/crd_rgbd_ir_synthetic.py']
    assert "custom_imports = dict(imports=['my_ir']" in files['configs/my_ir/crd_rgbd_ir_synthetic.py']
    assert [tool for tool, _ in tutorial_commands()] == ['tools/train.py', 'tools/test.py']
    assert all(args[0] == 'configs/my_ir/crd_rgbd_ir_synthetic.py' for _, args in tutorial_commands())


@pytest.mark.slow
def test_tutorial_ir_branch_finds_ir_only_defects(user_dir, data_root, monkeypatch, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.chdir(user_dir)
    try:
        for tool, args in tutorial_commands():
            load_tool(tool).main([*args, '--data-root', str(data_root)])
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((user_dir / 'work_dirs' / 'ir' / 'test' / 'metrics.json').read_text())
    assert [key for key in metrics if key not in ('notes', 'run')] == ['fused', 'rgb', 'depth', 'ir']
    assert set(metrics['ir']) == {'all', 'color', HOT_SPOT}
    ir, rgb = metrics['ir'][HOT_SPOT]['I-AUROC'], metrics['rgb'][HOT_SPOT]['I-AUROC']
    with capsys.disabled():
        print(f"\nhot_spot I-AUROC: ir {ir:.3f}, rgb {rgb:.3f}, depth {metrics['depth'][HOT_SPOT]['I-AUROC']:.3f}, "
              f"fused {metrics['fused'][HOT_SPOT]['I-AUROC']:.3f}; color I-AUROC: rgb "
              f"{metrics['rgb']['color']['I-AUROC']:.3f}, ir {metrics['ir']['color']['I-AUROC']:.3f}")
    assert ir >= 0.9
    assert ir > rgb


def _tutorial_config(user_dir: Path):
    """The tutorial's config, loaded (its custom_imports import my_ir)."""
    from mmad.utils import read_config
    return read_config(user_dir / 'configs' / 'my_ir' / 'crd_rgbd_ir_synthetic.py')


def _tutorial_dataset(user_dir: Path, data_root: Path):
    """The tutorial config's training dataset on ``data_root``, built the way the Runner builds it."""
    from mmad.registry import DATASETS
    dataset_cfg = _tutorial_config(user_dir).train_dataloader.dataset
    dataset_cfg.data_root = str(data_root)
    return DATASETS.build(dataset_cfg)


def test_a_missing_ir_file_is_one_line_naming_it(user_dir, data_root, tmp_path):
    dataset = _tutorial_dataset(user_dir, data_root)
    rgb_path = Path(dataset.get_data_info(1)['rgb_path'])
    ir_path = rgb_path.parent.parent / 'ir' / rgb_path.name
    moved = tmp_path / ir_path.name
    ir_path.rename(moved)
    try:
        with pytest.raises(FileNotFoundError) as error:
            dataset[1]
    finally:
        moved.rename(ir_path)
    assert str(error.value) == f'{ir_path} does not exist'


def test_an_8_bit_colour_ir_file_is_one_line_naming_it(user_dir, data_root, tmp_path):
    dataset = _tutorial_dataset(user_dir, data_root)
    rgb_path = Path(dataset.get_data_info(2)['rgb_path'])
    ir_path = rgb_path.parent.parent / 'ir' / rgb_path.name
    kept = tmp_path / ir_path.name
    ir_path.rename(kept)
    cv2.imwrite(str(ir_path), np.zeros((SIZE, SIZE, 3), np.uint8))
    try:
        with pytest.raises(ValueError) as error:
            dataset[2]
    finally:
        kept.replace(ir_path)
    assert str(error.value) == (f'{ir_path}: an ir image must be 1-channel 16-bit, got shape ({SIZE}, {SIZE}, 3) '
                                'of uint8')


def test_a_pipeline_without_the_ir_loader_names_the_modality(user_dir, data_root):
    from mmad.registry import DATASETS
    dataset_cfg = _tutorial_config(user_dir).train_dataloader.dataset
    dataset_cfg.update(data_root=str(data_root), pipeline=[step for step in dataset_cfg.pipeline
                                                           if step.type != 'LoadIRFromFile'])
    dataset_cfg.pipeline[-2]['keys'] = ('rgb', )
    with pytest.raises(KeyError, match=r"PackADInputs: modality 'ir' is missing for good_000; add the transform that "
                                       'produces it to the pipeline'):
        DATASETS.build(dataset_cfg)[0]
