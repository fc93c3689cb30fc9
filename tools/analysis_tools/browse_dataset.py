"""Write samples of a config's pipeline as images: each modality as the model sees it, and the mask.

``python tools/analysis_tools/browse_dataset.py CONFIG [--split test] [--num 8] [--out DIR]
[--cfg-options KEY=VALUE ...]``.

Each PNG (``OUT/<defect_type>/<sample_name>.png``) shows, left to right, every packed modality of one sample after
the split's whole pipeline (resizing, XYZToDepth, ...; before the data preprocessor's normalisation), titled with
its name and value range, then the ground-truth mask when the pipeline loads one.
"""
import argparse
import os.path as osp
import sys

SPLITS = ('train', 'val_stats', 'test')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Show samples of a config's pipeline")
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=SPLITS, default='test', help='whose dataloader\'s dataset (default test)')
    parser.add_argument('--num', type=int, default=8, help='number of samples, from the first (default 8)')
    parser.add_argument('--out', default='browse_dataset', help='output folder (default ./browse_dataset)')
    parser.add_argument('--tile-size', type=int, default=192, help='enlarge smaller images to about this size')
    parser.add_argument('--data-root', help='data root of the dataset')
    parser.add_argument('--cfg-options', nargs='+', action='extend', metavar='KEY=VALUE',
                        help='override settings of the config')
    return parser.parse_args(argv)


def sample_panel(inputs: dict, gt_mask, title: str, tile_size: int = 192):
    """uint8 RGB panel of one packed sample: one tile per modality, then the mask (when there is one).

    Tiles smaller than ``tile_size`` are enlarged (nearest neighbour, so every pixel stays a value of the input).
    """
    import cv2
    import numpy as np

    from mmad.visualization import draw_sample_panel, input_tile

    height, width = next(iter(inputs.values())).shape[-2:]
    scale = max(1, tile_size // max(height, width))

    def enlarge(tile):
        return cv2.resize(tile, (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)

    tiles = {f'{name} [{float(image.min()):.3g}, {float(image.max()):.3g}]': enlarge(input_tile(image.numpy()))
             for name, image in inputs.items()}
    first, *others = tiles
    mask = None if gt_mask is None else enlarge(np.asarray(gt_mask.cpu().numpy(), dtype=np.uint8)) > 0
    return draw_sample_panel(tiles[first], mask, {}, {}, title=f'{title} {first}',
                             inputs={name: tiles[name] for name in others})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import cv2

    from mmad.registry import DATASETS
    from mmad.utils import ConfigError
    from mmad.utils.fileio import write_image
    from mmad.utils.tool_args import load_tool_config

    try:
        cfg = load_tool_config(args.config, args.cfg_options, args.data_root)
    except ConfigError as error:
        sys.exit(f'browse_dataset.py: error: {error}')
    key = f'{args.split}_dataloader'
    if key not in cfg:
        sys.exit(f'browse_dataset.py: error: {args.config} has no {key}; expected one of '
                 f'{[f"{split}_dataloader" for split in SPLITS if f"{split}_dataloader" in cfg]}')
    dataset = DATASETS.build(cfg[key].dataset)
    count = min(args.num, len(dataset))
    for index in range(count):
        packed = dataset[index]
        sample = packed['data_samples']
        defect = sample.metainfo.get('defect_type', 'unknown')
        name = sample.metainfo.get('sample_name', str(index))
        panel = sample_panel(packed['inputs'], sample.gt_mask if 'gt_mask' in sample else None, defect,
                             args.tile_size)
        write_image(osp.join(args.out, defect, f'{name}.png'), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    print(f'{count} samples of the {args.split} split of {args.config} written to {args.out}')


if __name__ == '__main__':
    main()
