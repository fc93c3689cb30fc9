"""Score new samples with a trained checkpoint: overlays, a CSV and a JSON of scores and decisions.

``python tools/infer.py CONFIG CHECKPOINT [INPUT] [--rgb PATH --xyz PATH ...] [--out DIR] [--threshold T]
[--device cpu] [--batch-size N] [--no-overlays]``.

INPUT is one sample's file (``.../rgb/000.png``: the sample of that stem), a folder with modality sub-folders
(``rgb/``, ``xyz/``, e.g. a category's ``test/crack``) or a category root (its ``test/*`` are walked); or give one
sample's files with ``--rgb``, ``--xyz``, ``--normals`` (``--mask`` optional). Writes into ``--out``:
``overlays/<name>.png`` per sample (each input, each branch map, the fused map, the mask when one exists; score and
decision in the header), ``results.csv`` and ``results.json``. A sample that cannot be scored (missing modality,
unreadable file, wrong size or channels) is skipped with a warning and listed as failed. See docs/inference.md.
"""
import argparse
import sys
import time

FILE_KEYS = ('rgb', 'xyz', 'normals')
CSV_COLUMNS = ('name', 'status', 'score', 'decision', 'label', 'threshold', 'error')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Only the standard library is imported before the arguments are parsed: `--help` answers at once.
    parser = argparse.ArgumentParser(description='Score samples with an mmad checkpoint')
    parser.add_argument('config', help='config file of the checkpoint')
    parser.add_argument('checkpoint', help='checkpoint file (with fitted statistics), or a training\'s work dir (its '
                        'last checkpoint is used)')
    parser.add_argument('input', nargs='?',
                        help='a sample file (.../rgb/000.png), a folder with modality sub-folders, or a category root')
    for key in FILE_KEYS:
        parser.add_argument(f'--{key}', help=f'{key} file of one sample (instead of INPUT)')
    parser.add_argument('--mask', help='ground-truth mask of the sample given by --rgb/--xyz/... (drawn only)')
    parser.add_argument('--out', default='work_dirs/infer', help='output folder (default: work_dirs/infer)')
    parser.add_argument('--threshold', type=float,
                        help='decision threshold on the image score, replacing the one stored in the checkpoint')
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    parser.add_argument('--batch-size', type=int, default=8, help='samples per forward pass (default: 8)')
    parser.add_argument('--no-overlays', action='store_true', help='write the CSV and JSON only')
    args = parser.parse_args(argv)
    given = {key: getattr(args, key) for key in FILE_KEYS if getattr(args, key)}
    if (args.input is None) == (not given):
        parser.error('give either INPUT or the files of one sample (--rgb, --xyz, ...), not both')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got {args.batch_size}')
    return args


def collect_samples(args: argparse.Namespace, file_keys: list[str]) -> list[dict]:
    """The samples named on the command line."""
    from mmad.apis.sample_files import find_samples

    if args.input is not None:
        return find_samples(args.input, file_keys)
    sample = {key: getattr(args, key) for key in FILE_KEYS if getattr(args, key)}
    if args.mask:
        sample['mask'] = args.mask
    return [sample]


def resolve_checkpoint(path: str) -> str:
    """``path`` itself, or the last checkpoint of the work dir ``path``."""
    import os.path as osp

    from mmad.utils.last_checkpoint import find_last_checkpoint

    if not osp.isdir(path):
        return path
    checkpoint = find_last_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f'the work dir {path} holds no complete checkpoint; expected epoch_<N>.pth or a '
                                'last_checkpoint file naming one')
    return checkpoint


def run(args: argparse.Namespace) -> dict:
    """Score every sample; return the summary."""
    import warnings
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from mmad.apis import InferenceInputError, init_model, predict_prepared
    from mmad.apis.inference import pipeline_of, sample_name
    from mmad.apis.inference_panel import draw_inference_panel
    from mmad.utils.fileio import write_image

    args.checkpoint = resolve_checkpoint(args.checkpoint)
    model = init_model(args.config, args.checkpoint, device=args.device)
    pipeline = pipeline_of(model)
    samples = collect_samples(args, pipeline.file_keys)
    threshold = args.threshold if args.threshold is not None else model.decision_threshold
    out = Path(args.out)
    rows: dict[int, dict] = {}
    batch: list[tuple[int, str, dict]] = []

    def flush() -> None:
        results = predict_prepared(model, [item for _, _, item in batch], threshold)
        for (index, name, _), result in zip(batch, results):
            overlay = None
            if not args.no_overlays:
                overlay = out / 'overlays' / (name.replace('/', '_') + '.png')
                write_image(overlay, draw_inference_panel(result)[..., ::-1])
            rows[index] = dict(name=name, status='ok', score=result.score, decision=result.decision,
                               label=result.label, threshold=result.threshold, error='',
                               branch_scores=result.branch_scores, files=result.files,
                               overlay=None if overlay is None else str(overlay))
        batch.clear()

    start = time.perf_counter()
    columns = (TextColumn('{task.description}'), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task('Scoring', total=len(samples))
        for index, sample in enumerate(samples):
            name = sample.get('name') or sample_name(sample)
            try:
                batch.append((index, name, pipeline(sample)))
            except InferenceInputError as error:
                warnings.warn(f'skipped: {error}', stacklevel=1)
                rows[index] = dict(name=name, status='failed', score=None, decision=None, label='',
                                   threshold=threshold, error=str(error), branch_scores={}, files={}, overlay=None)
            if len(batch) == args.batch_size:
                flush()
            progress.update(task, completed=len(rows) + len(batch))
        flush()
        progress.update(task, completed=len(rows))
    seconds = time.perf_counter() - start
    return write_outputs(args, model, [rows[index] for index in sorted(rows)], seconds, out)


def write_outputs(args: argparse.Namespace, model, rows: list[dict], seconds: float, out) -> dict:
    """Write ``results.csv`` and ``results.json``; return the summary."""
    import csv
    import io
    import json

    from mmad.utils.fileio import write_text

    branches = list(getattr(model, 'branch_names', ()))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow([*CSV_COLUMNS, *(f'{name}_score' for name in branches)])
    for row in rows:
        writer.writerow([*('' if row[key] is None else row[key] for key in CSV_COLUMNS),
                         *(row['branch_scores'].get(name, '') for name in branches)])
    scored = [row for row in rows if row['status'] == 'ok']
    summary = dict(samples=len(rows), scored=len(scored), failed=len(rows) - len(scored),
                   anomalous=sum(row['decision'] == 1 for row in scored),
                   good=sum(row['decision'] == 0 for row in scored),
                   undecided=sum(row['decision'] is None for row in scored),
                   seconds=round(seconds, 3), images_per_second=round(len(scored) / seconds, 3) if seconds else None)
    content = dict(config=args.config, checkpoint=args.checkpoint,
                   threshold=args.threshold if args.threshold is not None else model.decision_threshold,
                   threshold_rule='manual' if args.threshold is not None else model.threshold_rule,
                   summary=summary, samples=rows)
    write_text(out / 'results.csv', buffer.getvalue())
    write_text(out / 'results.json', json.dumps(content, indent=2) + '\n')
    return summary


def print_summary(summary: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f'Inference summary ({out})')
    table.add_column('')
    table.add_column('value', justify='right')
    for key, value in summary.items():
        table.add_row(key.replace('_', ' '), str(value))
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmad.apis import InferenceInputError
    from mmad.utils.model_checkpoint import CheckpointMismatchError

    try:
        summary = run(args)
    except (FileNotFoundError, CheckpointMismatchError, InferenceInputError, RuntimeError) as error:
        sys.exit(f'infer.py: error: {error}')
    print_summary(summary, args.out)
    if summary['failed'] and not summary['scored']:
        sys.exit(f'infer.py: error: none of the {summary["samples"]} samples could be scored (see {args.out}/'
                 'results.csv)')


if __name__ == '__main__':
    main()
