"""Set-up cost of a short run (one-epoch train.py + test.py): mmengine's defaults against mmad's, in one process.

Baseline (``mmengine_defaults``): the config loaded with ``Config.fromfile``, whose text yapf lays out again at every
use (the log, the dumped config, the visualiser's copy, the runtime info, every checkpoint's meta), and datasets
that serialise their data lists (a full ``gc.collect()`` per dataset build). ``mmad``: ``read_config`` (one layout
per distinct config) and unserialised lists. Both run the same commands on the same data with the same seed,
alternating, each repeat in its own work dirs; the script reports the median wall and process-CPU seconds of each,
their ratios, the yapf layouts per train + test, and whether both gave the same fused I-AUROC.

Example:
    python tools/analysis_tools/benchmark_run_setup.py configs/crd/crd_demo_synthetic.py --repeats 3 --out setup.json

Without ``--data-root`` a small synthetic MVTec 3D-AD category (64x64) is written to a temporary folder.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ('mmengine_defaults', 'mmad')
# Keeps the run small whatever the config: one epoch, no data-loader processes.
SMALL_RUN = ('train_cfg.max_epochs=1', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
             'val_stats_dataloader.num_workers=0', 'test_dataloader.num_workers=0')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=str(REPO / 'configs' / 'crd' / 'crd_demo_synthetic.py'),
                        help='config to train and test (default: the demo config)')
    parser.add_argument('--data-root', help='data root of the config\'s datasets (default: synthetic data)')
    parser.add_argument('--category', help='category of the config\'s datasets (with --data-root)')
    parser.add_argument('--repeats', type=int, default=3, help='train + test runs per variant')
    parser.add_argument('--work-dir', help='folder of the runs (default: a temporary folder, removed)')
    parser.add_argument('--out', help='also write the results as json to this file')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='more overrides for both variants, e.g. the image size of a pipeline step')
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error('--repeats must be at least 1')
    return args


def load_tool(name: str):
    """tools/<name>.py as a module; its main() takes the command-line arguments."""
    spec = importlib.util.spec_from_file_location(f'mmad_setup_benchmark_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def counted_layouts(counter: list):
    """Count mmengine's yapf layouts of config text while the block runs."""
    import mmengine.config.config as mmengine_config
    format_code = mmengine_config.FormatCode

    def counting(*args, **kwargs):
        counter.append(1)
        return format_code(*args, **kwargs)
    mmengine_config.FormatCode = counting
    try:
        yield
    finally:
        mmengine_config.FormatCode = format_code


@contextlib.contextmanager
def variant_settings(variant: str, loaders: list[str]):
    """Yield the variant's extra ``--cfg-options`` while its settings hold.

    The baseline's tools load configs with ``Config.fromfile`` and its datasets serialise their data lists (the
    default of mmengine's ``BaseDataset``); nothing changes for ``mmad``.
    """
    if variant == 'mmad':
        yield []
        return
    from mmengine.config import Config

    import mmad.utils.tool_args as tool_args
    read_config = tool_args.read_config
    tool_args.read_config = lambda path: Config.fromfile(str(path))
    try:
        yield [f'{loader}.dataset.serialize_data=True' for loader in loaders]
    finally:
        tool_args.read_config = read_config


def run_once(tools: dict, variant: str, config: str, data: list[str], options: list[str], loaders: list[str],
             work_dir: Path) -> dict:
    """One train + test of ``variant``; wall and process-CPU seconds, layouts and the fused I-AUROC."""
    layouts: list = []
    with variant_settings(variant, loaders) as variant_options, counted_layouts(layouts):
        options = [*options, *variant_options]
        wall, cpu = time.perf_counter(), time.process_time()
        tools['train'].main([config, '--work-dir', str(work_dir), *data, '--cfg-options', *options])
        checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
        tools['test'].main([config, checkpoint, '--work-dir', str(work_dir), *data, '--cfg-options', *options])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    return dict(wall_s=wall, cpu_s=cpu, layouts=len(layouts), fused_i_auroc=metrics['fused']['all']['I-AUROC'])


def summarise(runs: dict[str, list[dict]]) -> dict:
    summary = {variant: dict(wall_s=round(statistics.median(r['wall_s'] for r in rows), 2),
                             cpu_s=round(statistics.median(r['cpu_s'] for r in rows), 2),
                             layouts_per_run=sorted({r['layouts'] for r in rows}),
                             fused_i_auroc=sorted({r['fused_i_auroc'] for r in rows}))
               for variant, rows in runs.items()}
    base, mmad = summary['mmengine_defaults'], summary['mmad']
    return dict(variants=summary, wall_ratio=round(mmad['wall_s'] / base['wall_s'], 3),
                cpu_ratio=round(mmad['cpu_s'] / base['cpu_s'], 3),
                same_results=base['fused_i_auroc'] == mmad['fused_i_auroc'])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from mmad.utils import register_all_modules
    from mmad.utils.config_checks import dataloader_keys
    from mmad.utils.config_file import read_config

    register_all_modules()
    torch.set_num_threads(1)  # one thread: comparable runs, no spin-waiting on a shared machine
    loaders = dataloader_keys(read_config(args.config))
    tools = dict(train=load_tool('train'), test=load_tool('test'))
    with contextlib.ExitStack() as stack:
        root = Path(args.work_dir) if args.work_dir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        data_root, category = args.data_root, args.category
        if data_root is None:
            from mmad.datasets.synthetic import make_synthetic_mvtec3d
            data_root, category = str(root / 'data'), category or 'synthetic'
            make_synthetic_mvtec3d(data_root, category, height=64, width=64, num_train=8, num_val=4,
                                   num_test_per_defect=2)
        data = ['--data-root', data_root, *(['--category', category] if category else [])]
        runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
        for repeat in range(args.repeats):
            for variant in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:
                runs[variant].append(run_once(tools, variant, args.config, data, [*SMALL_RUN, *args.cfg_options],
                                              loaders, root / f'{variant}_{repeat}'))
    config = Path(args.config).resolve()
    shown = str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config)
    result = dict(config=shown, repeats=args.repeats, runs=runs, **summarise(runs))
    print(f'{"variant":<20}{"wall s":>8}{"CPU s":>8}  layouts per train + test')
    for variant, row in result['variants'].items():
        print(f'{variant:<20}{row["wall_s"]:>8}{row["cpu_s"]:>8}  {row["layouts_per_run"]}')
    print(f'mmad / mmengine defaults: wall {result["wall_ratio"]}, CPU {result["cpu_ratio"]}; '
          f'same fused I-AUROC: {result["same_results"]}')
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if not result['same_results']:
        raise SystemExit(f'benchmark_run_setup.py: the variants scored differently (fused I-AUROC '
                         f'{result["variants"]["mmengine_defaults"]["fused_i_auroc"]} with mmengine\'s defaults, '
                         f'{result["variants"]["mmad"]["fused_i_auroc"]} with mmad\'s): the timings compare '
                         'different computations')
    return result


if __name__ == '__main__':
    main()
