"""Publish a checkpoint: ``python tools/model_converters/publish_model.py CHECKPOINT OUT``.

Drops the optimiser state, the parameter schedulers and the message hub (only resuming needs them), keeps ``meta``
(modalities, branches, teacher, image size, config) and ``state_dict`` (weights and the fitted aggregator state),
and names the file ``<OUT without .pth>-<first 8 hex of its SHA-256>.pth`` as OpenMMLab does. The result loads with
``tools/test.py`` like the original.
"""
import argparse
import os.path as osp

from mmad.utils.checkpoint import publish_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Strip the training state from a checkpoint and add its hash')
    parser.add_argument('in_file', help='checkpoint written by training, e.g. work_dirs/run/epoch_30.pth')
    parser.add_argument('out_file', help='output path, e.g. crd_demo.pth (written as crd_demo-<hash8>.pth)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    final = publish_checkpoint(args.in_file, args.out_file)
    print(f'Published {args.in_file} ({osp.getsize(args.in_file) / 2**20:.1f} MiB) as {final} '
          f'({osp.getsize(final) / 2**20:.1f} MiB).')


if __name__ == '__main__':
    main()
