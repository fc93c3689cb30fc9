"""Draw a few synthetic MVTec 3D-AD samples (rgb, depth z, mask per defect type) into one PNG.

Example:
    python tools/misc/plot_synthetic_samples.py docs/images/synthetic_samples.png --category bagel
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np

from mmad.datasets.synthetic import DEFECT_TYPES, GOOD, render_synthetic_sample

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_file', type=Path, help='PNG file to write')
    parser.add_argument('--category', default='synthetic', help='category name (decides the look)')
    parser.add_argument('--height', type=int, default=256, help='image height in pixels')
    parser.add_argument('--width', type=int, default=256, help='image width in pixels')
    parser.add_argument('--samples', type=int, default=2, help='samples per defect type')
    parser.add_argument('--seed', type=int, default=0, help='data set seed')
    return parser.parse_args(argv)


def depth_image(xyz: np.ndarray) -> np.ma.MaskedArray:
    """Return z (H, W) of a point cloud (H, W, 3), masked where the point is missing."""
    return np.ma.masked_equal(xyz[..., 2], 0.0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kinds = (GOOD, *DEFECT_TYPES)
    columns = ('rgb', 'depth z (m)', 'mask')
    panel_inches = 2.2
    figure_size = (panel_inches * len(columns) * args.samples, panel_inches * len(kinds) * args.height / args.width)
    figure, axes = plt.subplots(len(kinds), len(columns) * args.samples, squeeze=False, figsize=figure_size)
    colormap = plt.get_cmap('viridis').with_extremes(bad='black')
    for row, kind in enumerate(kinds):
        for index in range(args.samples):
            sample = render_synthetic_sample(args.category, 'test', kind, index, height=args.height,
                                             width=args.width, seed=args.seed)
            panels = (sample.rgb, depth_image(sample.xyz), sample.gt)
            for column, (title, panel) in enumerate(zip(columns, panels)):
                axis = axes[row, column + len(columns) * index]
                if title == 'mask':
                    axis.imshow(panel, cmap='gray', vmin=0, vmax=255)
                else:
                    axis.imshow(panel, cmap=colormap if panel.ndim == 2 else None)
                axis.set_xticks([])
                axis.set_yticks([])
                if row == 0:
                    axis.set_title(title, fontsize=9)
                if column == 0 and index == 0:
                    axis.set_ylabel(kind, fontsize=10)
    figure.tight_layout()
    args.out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out_file, dpi=80)
    print(f'wrote {args.out_file}')


if __name__ == '__main__':
    main()
