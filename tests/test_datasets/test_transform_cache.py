"""CachedTransforms: the disk cache of the point-cloud steps (hits, invalidation, refusal, damage, concurrency)."""
import hashlib
import multiprocessing
import os
import pickle
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config

from mmad.apis import InferencePipeline
from mmad.datasets.synthetic import make_synthetic_eyecandies, make_synthetic_mvtec3d
from mmad.datasets.transforms import (
    CachedTransforms,
    DepthFromPoints,
    FitTablePlane,
    LoadXYZFromFile,
    NormalsFromDepth,
    uncached_steps,
)
from mmad.registry import DATASETS

BASE_CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'datasets'
SIZE = 48


class CountingStep(BaseTransform):
    """Counts the samples that reach it (the wrapped steps run only on a cache miss)."""

    def __init__(self):
        self.calls = 0

    def transform(self, results: dict) -> dict:
        self.calls += 1
        return results

    def __repr__(self) -> str:
        return 'CountingStep()'


@pytest.fixture(scope='module')
def mvtec_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('cache_data') / 'mvtec3d'
    make_synthetic_mvtec3d(root, 'synthetic', height=SIZE, width=SIZE, num_train=3, num_val=1, num_test_per_defect=1,
                           defect_types=('dent', ), seed=3)
    return root


def xyz_files(root: Path) -> list[Path]:
    return sorted((root / 'synthetic' / 'train' / 'good' / 'xyz').glob('*.tiff'))


def point_cloud_steps(plane_threshold: float = 0.005) -> list:
    return [LoadXYZFromFile(), FitTablePlane(size=32, plane_threshold=plane_threshold), DepthFromPoints(),
            NormalsFromDepth()]


def cached(cache_dir, counter: CountingStep | None = None, **plane) -> CachedTransforms:
    steps = point_cloud_steps(**plane)
    return CachedTransforms(transforms=steps[:1] + ([counter] if counter else []) + steps[1:],
                            keys=('depth', 'normals'), cache_dir=cache_dir)


def run(transform: CachedTransforms, path: Path) -> dict:
    return transform(dict(xyz_path=str(path), sample_name=path.stem))


def entries(transform: CachedTransforms) -> list[Path]:
    return sorted(transform.entry_dir.glob('*.npz'))


def test_a_hit_returns_the_arrays_of_the_miss_without_running_the_steps(mvtec_root, tmp_path):
    counter = CountingStep()
    transform = cached(tmp_path / 'cache', counter)
    path = xyz_files(mvtec_root)[0]
    miss, hit = run(transform, path), run(transform, path)
    uncached = run(cached(False), path)
    assert counter.calls == 1 and len(entries(transform)) == 1
    assert sorted(miss) == sorted(hit) == sorted(uncached) == [
        'depth', 'loaded_sizes', 'normals', 'ori_shape', 'sample_name', 'xyz_path']
    for key in ('depth', 'normals'):
        assert hit[key].dtype == miss[key].dtype == np.float32
        assert hit[key].tobytes() == miss[key].tobytes() == uncached[key].tobytes()
    assert hit['depth'].shape == (32, 32) and hit['normals'].shape == (32, 32, 3)
    assert hit['loaded_sizes'] == miss['loaded_sizes'] == {'xyz': (SIZE, SIZE)}
    assert hit['ori_shape'] == (SIZE, SIZE)
    assert 'FitTablePlane(size=(32, 32)' in (transform.entry_dir / 'transforms.txt').read_text()
    restored = pickle.loads(pickle.dumps(transform))
    assert restored.entry_dir == transform.entry_dir
    assert run(restored, path)['depth'].tobytes() == hit['depth'].tobytes()


def test_the_first_write_removes_the_temporary_files_of_killed_writers(mvtec_root, tmp_path):
    transform = cached(tmp_path / 'cache')
    dead = subprocess.Popen(['true'])
    dead.wait()
    transform.entry_dir.mkdir(parents=True)
    left_over = transform.entry_dir / f'.0123.npz.{dead.pid}.tmp'
    running = transform.entry_dir / f'.4567.npz.{os.getpid()}.tmp'
    left_over.write_bytes(b'partial')
    running.write_bytes(b'partial')
    run(transform, xyz_files(mvtec_root)[0])
    assert not left_over.exists() and running.exists()


def test_a_hit_still_checks_the_point_cloud_size_against_the_other_files(mvtec_root, tmp_path):
    transform = cached(tmp_path / 'cache')
    path = xyz_files(mvtec_root)[0]
    run(transform, path)
    results = dict(xyz_path=str(path), rgb_path='rgb.png', loaded_sizes={'rgb': (SIZE + 1, SIZE)})
    with pytest.raises(ValueError, match=rf'{path}: the xyz file is {SIZE}x{SIZE} \(HxW\) but the rgb file rgb.png'):
        transform(results)


def test_a_changed_parameter_or_file_is_computed_again(mvtec_root, tmp_path):
    counter = CountingStep()
    path = xyz_files(mvtec_root)[1]
    first = cached(tmp_path / 'cache', counter)
    run(first, path)
    other_threshold = cached(tmp_path / 'cache', counter, plane_threshold=0.01)
    run(other_threshold, path)
    assert counter.calls == 2 and other_threshold.entry_dir != first.entry_dir
    run(first, path)
    assert counter.calls == 2
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = run(first, path)
    assert counter.calls == 3 and len(entries(first)) == 2
    assert again['depth'].tobytes() == run(cached(False), path)['depth'].tobytes()


def test_a_cache_dir_inside_the_dataset_tree_is_refused(mvtec_root, tmp_path):
    pipeline = [dict(type='CachedTransforms', keys=('depth', ), cache_dir=str(mvtec_root / 'synthetic' / 'cache'),
                     transforms=[dict(type='LoadXYZFromFile'), dict(type='XYZToDepth', size=32)])]
    dataset = dict(type='MVTec3DDataset', data_root=str(mvtec_root), category='synthetic', pipeline=pipeline)
    with pytest.raises(ValueError, match=rf'CachedTransforms: cache_dir {mvtec_root}/synthetic/cache is inside the '
                                         rf'dataset tree {mvtec_root}; expected a folder outside it'):
        DATASETS.build(dataset)
    pipeline[0]['cache_dir'] = str(mvtec_root) + '_cache'
    assert len(DATASETS.build(dataset)) == 3


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'empty'])
def test_a_damaged_entry_is_computed_again_with_a_warning(mvtec_root, tmp_path, damage):
    counter = CountingStep()
    transform = cached(tmp_path / 'cache', counter)
    path = xyz_files(mvtec_root)[0]
    expected = run(transform, path)
    [entry] = entries(transform)
    content = entry.read_bytes()
    entry.write_bytes({'garbage': b'not an npz file', 'truncated': content[:len(content) // 2], 'empty': b''}[damage])
    with pytest.warns(UserWarning, match=rf'{entry}: unreadable cache entry \(\w+'):
        recomputed = run(transform, path)
    assert counter.calls == 2
    assert recomputed['normals'].tobytes() == expected['normals'].tobytes()
    assert entry.read_bytes() == content


def test_a_disabled_or_unwritable_cache_computes_every_sample(mvtec_root, tmp_path):
    counter = CountingStep()
    path = xyz_files(mvtec_root)[0]
    disabled = cached(False, counter)
    assert disabled.entry_dir is None
    expected = run(disabled, path)
    run(disabled, path)
    assert counter.calls == 2
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    unwritable = cached(blocker / 'cache', counter)
    with pytest.warns(UserWarning, match=rf'CachedTransforms: cannot write the cache entry {blocker}/cache/'):
        result = run(unwritable, path)
    run(unwritable, path)
    assert counter.calls == 4
    assert result['depth'].tobytes() == expected['depth'].tobytes()


def test_the_default_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('MMAD_CACHE_DIR', str(tmp_path / 'env_cache'))
    assert cached(None).cache_dir == tmp_path / 'env_cache'
    monkeypatch.delenv('MMAD_CACHE_DIR')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert cached(None).cache_dir == tmp_path / 'xdg' / 'mmad' / 'derived'


def test_a_step_without_parameters_in_its_repr_is_refused():
    with pytest.raises(ValueError, match=r'cannot be cached: a cached step must be a transform whose repr states'):
        CachedTransforms(transforms=[lambda results: results], keys=('depth', ), cache_dir=False)
    with pytest.raises(ValueError, match=r'keys must be a non-empty sequence of result keys, got \'depth\''):
        CachedTransforms(transforms=[LoadXYZFromFile()], keys='depth', cache_dir=False)


def _fill(job: tuple) -> dict:
    """Two passes over the samples in a process's own order; the sha256 of each depth + normals it got."""
    cache_dir, paths, seed, barrier = job
    transform = cached(cache_dir)
    order = list(paths)
    random.Random(seed).shuffle(order)
    barrier.wait()
    digests = {}
    for path in order + order:
        results = run(transform, Path(path))
        digest = hashlib.sha256(results['depth'].tobytes() + results['normals'].tobytes()).hexdigest()
        assert digests.setdefault(path, digest) == digest
    return digests


@pytest.mark.slow
def test_processes_filling_the_same_entries_at_once_leave_valid_identical_entries(mvtec_root, tmp_path):
    paths = [str(path) for path in xyz_files(mvtec_root)] + sorted(
        str(path) for path in (mvtec_root / 'synthetic').glob('*/*/xyz/*.tiff') if 'train' not in path.parts)
    context = multiprocessing.get_context('fork')
    manager = context.Manager()
    barrier = manager.Barrier(4)
    with context.Pool(4) as pool:
        digests = pool.map(_fill, [(tmp_path / 'cache', paths, seed, barrier) for seed in range(4)])
    expected = {}
    for path in paths:
        results = run(cached(False), Path(path))
        expected[path] = hashlib.sha256(results['depth'].tobytes() + results['normals'].tobytes()).hexdigest()
    assert all(process == expected for process in digests)
    transform = cached(tmp_path / 'cache')
    assert len(entries(transform)) == len(paths) == 6
    assert sorted(path.name for path in transform.entry_dir.iterdir() if path.suffix != '.npz') == ['transforms.txt']
    for entry in entries(transform):
        with np.load(entry, allow_pickle=False) as data:
            assert sorted(data.files) == ['__meta__', 'depth', 'normals']


@pytest.fixture(scope='module')
def eyecandies_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('cache_data') / 'eyecandies'
    make_synthetic_eyecandies(root, 'CandyCane', size=SIZE, num_train=2, num_val=1, num_test_per_defect=1, seed=3)
    return root


@pytest.mark.parametrize('name', ['mvtec3d_rgbd', 'mvtec3d_rgbdn', 'mvtec3d_rgbn', 'eyecandies_rgbd',
                                  'eyecandies_rgbdn'])
def test_the_base_configs_cache_their_point_cloud_steps_without_changing_the_samples(
        name, mvtec_root, eyecandies_root, tmp_path):
    cfg = Config.fromfile(BASE_CONFIGS / f'{name}.py')
    dataset = cfg.test_dataloader.dataset
    dataset.update(data_root=str(mvtec_root if name.startswith('mvtec3d') else eyecandies_root), category=(
        'synthetic' if name.startswith('mvtec3d') else 'CandyCane'))
    [wrapper] = [step for step in dataset.pipeline if step.type == 'CachedTransforms']
    assert set(wrapper['keys']) <= set(cfg.modalities)
    wrapper.cache_dir = str(tmp_path / 'cache')
    with_cache = DATASETS.build(dataset)
    without_cache = DATASETS.build(dict(dataset, pipeline=uncached_steps(dataset.pipeline)))
    for index in (0, len(with_cache) - 1):
        expected = without_cache[index]
        for _ in ('miss', 'hit'):
            sample = with_cache[index]
            assert sample['inputs'].keys() == expected['inputs'].keys() == set(cfg.modalities)
            for modality, tensor in expected['inputs'].items():
                assert torch.equal(sample['inputs'][modality], tensor)
            assert torch.equal(sample['data_samples'].gt_mask, expected['data_samples'].gt_mask)
            assert sample['data_samples'].metainfo == expected['data_samples'].metainfo
    assert len(list((tmp_path / 'cache').glob('*/*.npz'))) == 2


def test_inference_runs_the_wrapped_steps_of_a_cached_pipeline():
    cfg = Config.fromfile(BASE_CONFIGS / 'mvtec3d_rgbdn.py')
    pipeline = InferencePipeline(cfg.test_pipeline)
    assert pipeline.file_keys == ['rgb', 'xyz']
    assert 'CachedTransforms' not in [type(step).__name__ for step in pipeline.transforms]
