"""Render the markdown tables of docs/benchmarks.md from the JSON files of tools/analysis_tools/benchmark.py.

One column per JSON file (e.g. before / after an optimisation, CPU / GPU); a part a run did not measure shows
``-``.

Example:
    python tools/analysis_tools/render_benchmarks.py before.json after.json > tables.md
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

Row = tuple[str, Callable[[dict], object]]
MISSING = '-'


def _get(result: dict, *keys: str):
    """``result[k0][k1]...``, None where any key is missing."""
    for key in keys:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def _number(value, digits: int = 3) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return MISSING
    return f'{value:.{digits}g}' if abs(value) < 10 ** digits else f'{value:.0f}'


def _run_rows() -> list[Row]:
    return [
        ('config', lambda r: _get(r, 'meta', 'config')),
        ('device', lambda r: _get(r, 'meta', 'device_name')),
        ('torch / threads', lambda r: f"{_get(r, 'meta', 'torch')} / {_get(r, 'meta', 'threads')}"),
        ('batch x image size (train)',
         lambda r: f"{_get(r, 'meta', 'batch_size')} x {_get(r, 'meta', 'image_size')}"),
        ('teacher weights',
         lambda r: 'random (--random-teacher)' if _get(r, 'meta', 'random_teacher') else 'as configured'),
        ('AMP / compile / memory format',
         lambda r: f"{_yes(_get(r, 'meta', 'amp'))} / {_yes(_get(r, 'meta', 'compile'))} / "
                   f"{_get(r, 'meta', 'memory_format') or 'default'}"),
        ('evaluation grad mode', lambda r: _get(r, 'meta', 'eval_grad_mode') or 'inference_mode'),
        ('settings (--cfg-options)', lambda r: ' '.join(_get(r, 'meta', 'cfg_options') or []) or '-'),
        ('timed iterations (warm-up)', lambda r: f"{_get(r, 'meta', 'iters')} ({_get(r, 'meta', 'warmup')})"),
        ('note', lambda r: _get(r, 'meta', 'note') or ''),
    ]


def _yes(value) -> str:
    return 'on' if value else 'off'


def _train_rows(results: Sequence[dict]) -> list[Row]:
    branches = sorted({key for result in results for key in (_get(result, 'train', 'steps') or {})
                       if key.startswith('branch_step.')})
    rows: list[Row] = [
        ('CRD step, s', lambda r: _number(_get(r, 'train', 'steps', 'crd_step', 'seconds'))),
        ('CRD step, images/s', lambda r: _number(_get(r, 'train', 'steps', 'crd_step', 'images_per_s'))),
        ('teacher forward (parts), s', lambda r: _number(_get(r, 'train', 'steps', 'teacher_forward', 'seconds'))),
    ]
    rows += [(f'{key.split(".", 1)[1]} student step (parts), s',
              lambda r, key=key: _number(_get(r, 'train', 'steps', key, 'seconds'))) for key in branches]
    rows += [
        ('sum of parts, s', lambda r: _number(_get(r, 'train', 'parts_seconds'))),
        ('**CRD step / sum of parts** (target <= 1.1)', lambda r: _number(_get(r, 'train', 'crd_over_parts'))),
        ('plain PyTorch step, s', lambda r: _number(_get(r, 'train', 'steps', 'plain_step', 'seconds'))),
        ('plain PyTorch step, images/s', lambda r: _number(_get(r, 'train', 'steps', 'plain_step', 'images_per_s'))),
        ('**CRD step / plain step** (target <= 1.05; after optimisation <= 0.83)',
         lambda r: _number(_get(r, 'train', 'crd_over_plain'))),
        ('CRD / parts, process CPU time', lambda r: _number(_get(r, 'train', 'crd_over_parts_cpu'))),
        ('CRD / plain, process CPU time', lambda r: _number(_get(r, 'train', 'crd_over_plain_cpu'))),
        ('peak memory CRD step, MiB', lambda r: _number(_get(r, 'train', 'steps', 'crd_step', 'peak_memory_mib'), 4)),
        ('memory added by the CRD step, MiB',
         lambda r: _number(_get(r, 'train', 'steps', 'crd_step', 'step_memory_mib'), 4)),
        ('peak memory plain step, MiB',
         lambda r: _number(_get(r, 'train', 'steps', 'plain_step', 'peak_memory_mib'), 4)),
        ('memory kind', lambda r: _get(r, 'train', 'memory_kind')),
    ]
    return rows


def _infer_rows(results: Sequence[dict]) -> list[Row]:
    sizes = sorted({int(key.removeprefix('batch_')) for result in results for key in (_get(result, 'infer') or {})
                    if key.startswith('batch_')})
    rows: list[Row] = []
    for size in sizes:
        rows += [(f'batch {size}: images/s', lambda r, k=f'batch_{size}': _number(_get(r, 'infer', k, 'images_per_s'))),
                 (f'batch {size}: latency per image, ms',
                  lambda r, k=f'batch_{size}': _number(_get(r, 'infer', k, 'latency_ms_per_image')))]
    return rows


def _data_rows() -> list[Row]:
    return [
        ('source images (H = W), samples', lambda r: f"{_get(r, 'data', 'source_size')}, {_get(r, 'data', 'samples')}"
         if _get(r, 'data') else MISSING),
        ('workers / batch size', lambda r: f"{_get(r, 'data', 'workers')} / {_get(r, 'data', 'batch_size')}"
         if _get(r, 'data') else MISSING),
        ('pipeline samples/s', lambda r: _number(_get(r, 'data', 'samples_per_s'))),
        ('training images/s (CRD step)', lambda r: _number(_get(r, 'data', 'train_images_per_s'))),
        ('data is the bottleneck', lambda r: {True: 'yes', False: 'no'}.get(_get(r, 'data', 'bottleneck'), MISSING)),
    ]


def _metric_rows() -> list[Row]:
    return [
        ('maps (H = W)', lambda r: f"{_get(r, 'metrics', 'maps')} ({_get(r, 'metrics', 'map_size')})"
         if _get(r, 'metrics') else MISSING),
        ('score sources', lambda r: ', '.join(_get(r, 'metrics', 'sources') or []) or MISSING),
        ('process, s', lambda r: _number(_get(r, 'metrics', 'process_seconds'))),
        ('compute_metrics (with AU-PRO), s', lambda r: _number(_get(r, 'metrics', 'compute_seconds'))),
        ('total, s', lambda r: _number(_get(r, 'metrics', 'seconds'))),
    ]


def _table(title: str, rows: list[Row], results: Sequence[dict], names: Sequence[str]) -> str:
    lines = [f'**{title}**', '', '| | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
    for label, cell in rows:
        values = [cell(result) for result in results]
        lines.append(f'| {label} | ' + ' | '.join(MISSING if value is None else str(value) for value in values) + ' |')
    return '\n'.join(lines)


def render_markdown(results: Sequence[dict], names: Sequence[str] | None = None) -> str:
    """The markdown tables (runs, training, inference, data, metrics) of benchmark results, one column per run.

    Args:
        results: Parsed benchmark JSONs.
        names: Column titles (default: run 1, run 2, ...).

    Returns:
        Markdown text; a section no run measured is left out.
    """
    names = list(names or [f'run {index + 1}' for index in range(len(results))])
    sections = [_table('Runs', _run_rows(), results, names)]
    for part, title, rows in (('train', 'Training', _train_rows(results)),
                              ('infer', 'Inference (test_step)', _infer_rows(results)),
                              ('data', 'Data pipeline', _data_rows()),
                              ('metrics', 'Metrics (ADMetric)', _metric_rows())):
        if any(_get(result, part) for result in results):
            sections.append(_table(title, rows, results, names))
    return '\n\n'.join(sections) + '\n'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', nargs='+', type=Path, help='benchmark.py --out JSON files, one column each')
    parser.add_argument('--names', nargs='+', help='column titles (default: the file names)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.names and len(args.names) != len(args.results):
        raise SystemExit(f'render_benchmarks: {len(args.names)} --names for {len(args.results)} JSON files; give one '
                         'name per file.')
    results = []
    for path in args.results:
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(f'render_benchmarks: cannot read {path}: {error}; expected a benchmark.py --out '
                             'JSON.') from error
    print(render_markdown(results, args.names or [path.stem for path in args.results]), end='')


if __name__ == '__main__':
    main()
