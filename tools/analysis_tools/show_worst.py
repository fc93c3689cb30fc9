"""A grid of the worst false positives and false negatives of a test run, from its saved scores and heatmaps.

``python tools/analysis_tools/show_worst.py RUN HEATMAPS [--num 4] [--out worst.png]``: RUN is the test's work dir
(holding ``scores.csv``), HEATMAPS the ``--show-dir`` of that test (``<defect>/<defect>_<stem>.png`` panels).

False positives are normal samples (ground truth without anomalous pixel), highest score first; false negatives are
anomalous samples, lowest score first. When the run had a decision threshold (``pred_label`` in ``scores.csv``),
only the wrongly decided ones are shown. The grid has one column of false positives and one of false negatives, each
panel under a line naming the sample and its score.
"""
import argparse
import csv
import os.path as osp
import sys

HEADER = 22


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Grid of the worst false positives and false negatives of a test')
    parser.add_argument('run', help='work dir of the test run (scores.csv)')
    parser.add_argument('heatmaps', help='the --show-dir of that test run')
    parser.add_argument('--num', type=int, default=4, help='samples per column (default 4)')
    parser.add_argument('--out', help='output PNG (default: RUN/worst_cases.png)')
    return parser.parse_args(argv)


def read_scores(path: str) -> list[dict]:
    """Rows of ``scores.csv`` with ``label`` and ``pred_label`` as int (None when empty) and ``score`` as float."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist; expected the scores.csv a test run writes beside metrics.json')
    with open(path, newline='') as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        row['label'] = int(row['label'])
        row['score'] = float(row['score'])
        row['pred_label'] = int(row['pred_label']) if row['pred_label'] != '' else None
    return rows


def worst_cases(rows: list[dict], num: int) -> tuple[list[dict], list[dict]]:
    """The ``num`` worst false positives (highest normal scores) and false negatives (lowest anomalous scores).

    With decisions (``pred_label`` set), only normal samples decided anomalous and anomalous ones decided normal.
    """
    decided = all(row['pred_label'] is not None for row in rows)
    normal = [row for row in rows if row['label'] == 0 and (not decided or row['pred_label'] == 1)]
    anomalous = [row for row in rows if row['label'] == 1 and (not decided or row['pred_label'] == 0)]
    return (sorted(normal, key=lambda row: -row['score'])[:num], sorted(anomalous, key=lambda row: row['score'])[:num])


def heatmap_path(heatmaps: str, row: dict) -> str:
    """The panel the heatmap hook wrote for a row of ``scores.csv`` (its name is the sample's image path)."""
    stem = osp.splitext(osp.basename(row['name']))[0]
    for name in (f"{row['defect_type']}_{stem}.png", f'{stem}.png'):
        path = osp.join(heatmaps, row['defect_type'], name)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f"no heatmap of sample {row['name']} in {osp.join(heatmaps, row['defect_type'])}; "
                            'expected the --show-dir of the same test run')


def labelled(panel, text: str):
    """A BGR panel under a white line of text."""
    import cv2
    import numpy as np

    bar = np.full((HEADER, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def column(panels: list, title: str, width: int, height: int):
    """Panels stacked under a title, padded to ``width`` x ``height`` with white."""
    import numpy as np

    stacked = np.concatenate([labelled(np.zeros((0, width, 3), np.uint8), title), *panels], axis=0)
    out = np.full((height, width, 3), 255, np.uint8)
    out[:stacked.shape[0], :stacked.shape[1]] = stacked
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import cv2
    import numpy as np

    from mmad.evaluation.metrics.result_files import SCORES_FILE
    from mmad.utils.fileio import write_image

    try:
        rows = read_scores(osp.join(args.run, SCORES_FILE))
        false_positives, false_negatives = worst_cases(rows, args.num)
        columns = []
        for title, cases in (('worst false positives (normal, highest score)', false_positives),
                             ('worst false negatives (anomalous, lowest score)', false_negatives)):
            panels = [labelled(cv2.imread(heatmap_path(args.heatmaps, row), cv2.IMREAD_COLOR),
                               f"{osp.basename(row['name'])} {row['defect_type']} score {row['score']:.4g}")
                      for row in cases]
            columns.append((title, panels))
    except FileNotFoundError as error:
        sys.exit(f'show_worst.py: error: {error}')
    width = max([panel.shape[1] for _, panels in columns for panel in panels] + [400])
    panels_padded = [(title, [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255)
                              for p in panels]) for title, panels in columns]
    height = max(HEADER + sum(p.shape[0] for p in panels) for _, panels in panels_padded)
    grid = np.concatenate([column(panels, title, width, height) for title, panels in panels_padded], axis=1)
    out = args.out or osp.join(args.run, 'worst_cases.png')
    write_image(out, grid)
    print(f'{len(false_positives)} false positives and {len(false_negatives)} false negatives of {len(rows)} samples '
          f'written to {out}')


if __name__ == '__main__':
    main()
