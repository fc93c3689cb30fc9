"""Write a synthetic category in the exact MVTec 3D-AD layout (rgb PNG, xyz TIFF in metres, gt PNG).

Example:
    python tools/misc/make_synthetic_mvtec3d.py data/synthetic_mvtec3d --category bagel --height 128 --width 128
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmad.datasets.synthetic import DEFECT_TYPES, make_synthetic_mvtec3d


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', type=Path, help='root folder; OUT_DIR/CATEGORY is written')
    parser.add_argument('--category', default='synthetic', help='category name (it decides the look)')
    parser.add_argument('--height', type=int, default=128, help='image height in pixels')
    parser.add_argument('--width', type=int, default=128, help='image width in pixels')
    parser.add_argument('--num-train', type=int, default=20, help='samples in train/good')
    parser.add_argument('--num-val', type=int, default=10, help='samples in validation/good')
    parser.add_argument('--num-test-per-defect', type=int, default=10,
                        help='samples in test/good and in each defect folder')
    parser.add_argument('--defect-types', nargs='+', default=list(DEFECT_TYPES), choices=DEFECT_TYPES,
                        help='defect folders to write')
    parser.add_argument('--shadow-prob', type=float, default=0.3,
                        help='probability of a sensor-shadow strip of missing points along one border')
    parser.add_argument('--seed', type=int, default=0, help='seed; the output is a pure function of the arguments')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    root = make_synthetic_mvtec3d(
        args.out_dir, args.category, height=args.height, width=args.width, num_train=args.num_train,
        num_val=args.num_val, num_test_per_defect=args.num_test_per_defect, seed=args.seed,
        defect_types=args.defect_types, shadow_prob=args.shadow_prob, show_progress=True)
    test_folders = ', '.join(f'{kind} {args.num_test_per_defect}' for kind in ('good', *args.defect_types))
    print(f'Wrote {root} in {time.perf_counter() - start:.1f} s: {args.height}x{args.width} (HxW), '
          f'train {args.num_train}, validation {args.num_val}, test: {test_folders}; seed {args.seed}')


if __name__ == '__main__':
    main()
