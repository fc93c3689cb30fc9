"""Export a trained CRD checkpoint to ONNX: the whole inference graph, one named input per modality.

``python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--input-channels MOD=C ...]
[--external-data] [--cfg-options KEY=VALUE ...]``.

The checkpoint is loaded strictly (same modalities, branches and teacher as the config) and must hold the
aggregator's validation statistics. Inputs are the test pipeline's tensors before normalisation; the outputs, the
metadata (decision threshold, modalities, size) and how to run the file with onnxruntime are in docs/deploy.md.
"""
import argparse
import os.path as osp
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Only the standard library is imported before the arguments are parsed: `--help` answers at once.
    parser = argparse.ArgumentParser(description='Export an mmad checkpoint to ONNX')
    parser.add_argument('config', help='config file of the checkpoint')
    parser.add_argument('checkpoint', help='checkpoint file (with fitted aggregator statistics)')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        help="input size (default: the config's image_size)")
    parser.add_argument('--input-channels', nargs='+', default=[], metavar='MODALITY=C',
                        help='channels of a modality\'s input, 1 or 3 (default 3), e.g. depth=1 for the depth map '
                        'of XYZToDepth')
    parser.add_argument('--external-data', action='store_true',
                        help='keep the weights in OUT.onnx.data (automatic above 1 GiB of weights)')
    parser.add_argument('--cfg-options', nargs='+', action='extend', metavar='KEY=VALUE',
                        help='override settings of the config')
    return parser.parse_args(argv)


def parse_input_channels(items: list[str]) -> dict[str, int]:
    """``['depth=1']`` -> ``{'depth': 1}``; a malformed item raises ``ValueError`` naming it."""
    channels = {}
    for item in items:
        name, _, value = item.partition('=')
        if not name or not value.isdigit():
            raise ValueError(f'--input-channels: expected MODALITY=C (e.g. depth=1), got {item!r}')
        channels[name] = int(value)
    return channels


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmad.apis import init_model
    from mmad.deploy import ExportError, export_onnx
    from mmad.utils import ConfigError, parse_cfg_options
    from mmad.utils.model_checkpoint import CheckpointMismatchError

    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'export_onnx.py: error: {what} {path} does not exist')
    try:
        channels = parse_input_channels(args.input_channels)
        model = init_model(args.config, args.checkpoint, cfg_options=parse_cfg_options(args.cfg_options))
    except (ValueError, ConfigError, CheckpointMismatchError) as error:
        sys.exit(f'export_onnx.py: error: {error}')
    shape = args.shape or model.cfg.get('image_size')
    if shape is None:
        sys.exit(f'export_onnx.py: error: {args.config} sets no image_size; give the input size with --shape H W')
    shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
    start = time.perf_counter()
    try:
        export_onnx(model, args.out, shape, channels, threshold=model.decision_threshold,
                    metadata=dict(config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint),
                                  threshold_rule=model.threshold.describe()),
                    external_data=True if args.external_data else None)
    except (ExportError, OSError) as error:
        sys.exit(f'export_onnx.py: error: {error}')
    threshold = model.decision_threshold
    print(f'Exported {args.checkpoint} to {args.out} in {time.perf_counter() - start:.1f} s: inputs '
          f'{list(model.modalities)} of size {shape[0]}x{shape[1]} (dynamic batch), decision threshold '
          f'{"none (no threshold fitted)" if threshold is None else f"{threshold:.6g}"}.')


if __name__ == '__main__':
    main()
