"""Plot the ROC and PRO curves of a finished test run from its saved ``curves.npz`` (no re-run).

``python tools/analysis_tools/plot_curves.py RUN [--out DIR]``: RUN is the test's work dir (holding
``metrics.json`` and ``curves.npz``) or the ``curves.npz`` file. Writes ``roc_image.png``, ``roc_pixel.png`` and
``pro.png`` (one line per source: fused and every branch, with its area) into ``--out`` (default: beside the file).
"""
import argparse
import os.path as osp
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Plot the saved ROC and PRO curves of a test run')
    parser.add_argument('run', help='work dir of the test run, or its curves.npz')
    parser.add_argument('--out', help='output folder (default: the folder of curves.npz)')
    parser.add_argument('--pro-limit', type=float, default=0.3, help='FPR limit marked on the PRO plot')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmad.evaluation.metrics.result_files import CURVES_FILE
    from mmad.visualization import load_curves, plot_curves

    path = osp.join(args.run, CURVES_FILE) if osp.isdir(args.run) else args.run
    try:
        curves = load_curves(path)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'plot_curves.py: error: {error}')
    written = plot_curves(curves, args.out or osp.dirname(osp.abspath(path)), pro_limit=args.pro_limit)
    print(f'Curves of {", ".join(curves)} written: {", ".join(written)}')


if __name__ == '__main__':
    main()
