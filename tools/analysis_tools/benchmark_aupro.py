"""Benchmark the shipped exact AU-PRO against the straightforward reference: value, time and peak memory.

Generates seeded, realistic anomaly maps (float32; mostly normal pixels, blob-shaped ground-truth regions, some
all-normal images, scores correlated with the ground truth plus noise), then, in this process, runs the shipped
``mmad.evaluation.functional.au_pro`` and the reference of ``tests/test_evaluation/reference_aupro.py`` (time and
tracemalloc peak of each), and the shipped one again in a fresh process that holds only the inputs (its peak
resident memory, ``ru_maxrss``, is the figure to keep under 2 GB).

Example:
    python tools/analysis_tools/benchmark_aupro.py --num 1197 --size 256 --repeat 3
"""
import argparse
import importlib.util
import multiprocessing
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from mmad.evaluation.functional import au_pro

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_FILE = REPO_ROOT / 'tests' / 'test_evaluation' / 'reference_aupro.py'
MIB = 1024**2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num', type=int, default=1197, help='number of maps (MVTec 3D-AD test set: 1197)')
    parser.add_argument('--size', type=int, default=256, help='height and width of each map')
    parser.add_argument('--repeat', type=int, default=1, help='timed runs of each implementation; best is shown')
    parser.add_argument('--limit', type=float, default=0.3, help='FPR integration limit')
    parser.add_argument('--seed', type=int, default=0, help='seed of the generated maps')
    return parser.parse_args()


def smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1], shape (size, size): ``cells`` x ``cells`` noise upsampled bicubically."""
    coarse = rng.random((cells, cells), dtype=np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One to three irregular blobs covering 0.1 % to 6 % of the image, bool (size, size)."""
    mask = np.zeros((size, size), dtype=bool)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(rng.integers(1, 4)):
        centre = rng.uniform(0.15, 0.85, 2) * size
        radius = np.sqrt(rng.uniform(0.001, 0.02) * size * size / np.pi)
        stretch = rng.uniform(0.5, 2.0)
        distance = np.hypot((rows - centre[0]) * stretch, (cols - centre[1]) / stretch) / radius
        mask |= distance + 0.6 * (smooth_field(rng, size, 8) - 0.5) < 1.0
    return mask


def make_maps(num: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded float32 anomaly maps and bool masks, shape (num, size, size); a quarter of the images are normal."""
    rng = np.random.default_rng(seed)
    maps = np.empty((num, size, size), dtype=np.float32)
    masks = np.zeros((num, size, size), dtype=bool)
    for index in range(num):
        if rng.random() >= 0.25:
            masks[index] = blob_mask(rng, size)
        strength = rng.uniform(0.3, 2.0)
        signal = cv2.GaussianBlur(masks[index].astype(np.float32), (0, 0), sigmaX=3) * strength
        background = 0.5 * smooth_field(rng, size, 6)
        noise = rng.normal(0.0, 0.25, (size, size)).astype(np.float32)
        maps[index] = cv2.GaussianBlur(background + signal + noise, (0, 0), sigmaX=4)
    return maps, masks


def load_reference() -> Callable[..., float]:
    """Import ``reference_au_pro`` from the test folder."""
    spec = importlib.util.spec_from_file_location('reference_aupro', REFERENCE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_au_pro


def measure(function: Callable[..., float], repeat: int, *args) -> tuple[float, float, float]:
    """Run ``function(*args)`` ``repeat`` times: (value, best seconds, tracemalloc peak MiB of the first run)."""
    times = []
    peak = 0.0
    for run in range(repeat):
        if run == 0:
            tracemalloc.start()
        start = time.perf_counter()
        value = function(*args)
        times.append(time.perf_counter() - start)
        if run == 0:
            peak = tracemalloc.get_traced_memory()[1] / MIB
            tracemalloc.stop()
    return value, min(times), peak


def max_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_process_run(maps_file: str, masks_file: str, limit: float) -> dict[str, float]:
    """In a fresh process: load the inputs, run the shipped AU-PRO once, report time and peak memory."""
    maps, masks = np.load(maps_file), np.load(masks_file)
    rss_inputs = max_rss_mib()
    start = time.perf_counter()
    value = au_pro(maps, masks, integration_limit=limit)
    seconds = time.perf_counter() - start
    return dict(value=value, seconds=seconds, rss_inputs=rss_inputs, rss_peak=max_rss_mib())


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    maps, masks = make_maps(args.num, args.size, args.seed)
    normal_images = int(np.count_nonzero(~masks.any(axis=(1, 2))))
    print(f'{args.num} maps of {args.size}x{args.size} float32 ({maps.nbytes / MIB:.0f} MiB), '
          f'{normal_images} all-normal, anomalous pixels {100 * masks.mean():.2f} %, '
          f'generated in {time.perf_counter() - start:.1f} s')

    with tempfile.TemporaryDirectory() as folder:
        maps_file, masks_file = str(Path(folder, 'maps.npy')), str(Path(folder, 'masks.npy'))
        np.save(maps_file, maps)
        np.save(masks_file, masks)
        with multiprocessing.get_context('spawn').Pool(1) as pool:
            fresh = pool.apply(fresh_process_run, (maps_file, masks_file, args.limit))

    shipped, shipped_seconds, shipped_peak = measure(au_pro, args.repeat, maps, masks, args.limit)
    reference, reference_seconds, reference_peak = measure(load_reference(), args.repeat, maps, masks, args.limit)

    print(f'AU-PRO@{args.limit:g}  reference {reference:.12f}  shipped {shipped:.12f}  '
          f'difference {shipped - reference:.3e}  (fresh process: {fresh["value"]:.12f})')
    print(f'time       reference {reference_seconds:.3f} s  shipped {shipped_seconds:.3f} s  '
          f'speed-up {reference_seconds / shipped_seconds:.1f}x  (fresh process: {fresh["seconds"]:.3f} s)')
    print(f'numpy peak reference {reference_peak:.1f} MiB  shipped {shipped_peak:.1f} MiB  (tracemalloc, '
          'beyond the inputs)')
    print(f'fresh process holding the inputs, shipped: peak RSS {fresh["rss_peak"]:.0f} MiB '
          f'({fresh["rss_inputs"]:.0f} MiB after loading the inputs)')
    print(f'this process (inputs, both implementations): peak RSS {max_rss_mib():.0f} MiB')


if __name__ == '__main__':
    main()
