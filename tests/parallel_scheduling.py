"""How pytest-xdist shares the tests between its workers (``make test`` runs ``pytest -n auto --maxprocesses=4``).

A work unit is a test module, except that the modules reading one of the session runs that train a model
(``SHARED_RUN_MODULES``) form one unit: the worker that runs them trains that model once. The units holding slow
tests are handed out first, so that no long end-to-end test starts last on one worker while the other idles. Each
worker uses one intra-op thread: two workers with two threads each on two cores spin-wait for each other.

pytest-xdist's own ``--dist loadgroup`` cannot do this with pytest 9 (its group suffix of the node id no longer takes
effect), so the scheduler is made here.
"""
from __future__ import annotations

import os

import pytest
import torch

# The session fixtures that train a model, and the modules that read each of them. A worker checks this table
# against the fixtures the tests actually request and stops the run when a module is missing from it.
SHARED_RUN_MODULES = {
    'tiny_crd': ('tests/test_apis/test_inference.py', 'tests/test_engine/test_autocast_optim_wrapper.py',
                 'tests/test_engine/test_branch_distributed_data_parallel.py', 'tests/test_tools/test_infer.py',
                 'tests/test_tools/test_train_all.py'),
    'tiny_run': ('tests/test_tools/test_analysis_tools.py', 'tests/test_tools/test_publish_model.py',
                 'tests/test_tools/test_resume_after_kill.py', 'tests/test_tools/test_work_dir_guard.py'),
    'ddp_run': ('tests/test_tools/test_dist_test.py', 'tests/test_tools/test_dist_train.py'),
}
UNIT_OF_MODULE = {module: run for run, modules in SHARED_RUN_MODULES.items() for module in modules}


def module_of(nodeid: str) -> str:
    """The test module of a node id, e.g. ``'tests/test_models/test_crd.py'``."""
    return nodeid.split('::', 1)[0]


def work_unit(nodeid: str) -> str:
    """The work unit of a test: its shared run, or else its module."""
    module = module_of(nodeid)
    return UNIT_OF_MODULE.get(module, module)


def in_worker() -> bool:
    return bool(os.environ.get('PYTEST_XDIST_WORKER'))


def pytest_configure(config: pytest.Config) -> None:
    if in_worker():
        torch.set_num_threads(1)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """A load-scope scheduler whose scopes are the work units, in collection order (slow units first)."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return WorkUnitScheduling(config, log)


def reads_shared_run(item: pytest.Item, run: str) -> bool:
    """Whether ``item`` requests the session fixture ``run`` (not a narrower fixture of the same name)."""
    definitions = getattr(item, '_fixtureinfo', None)
    definitions = definitions.name2fixturedefs.get(run) if definitions is not None else None
    return bool(definitions) and definitions[-1].scope == 'session'


def check_shared_run_modules(items: list[pytest.Item]) -> None:
    """Stop the run when a module reads a shared run but is not listed under it in ``SHARED_RUN_MODULES``."""
    for run, modules in SHARED_RUN_MODULES.items():
        readers = {module_of(item.nodeid) for item in items if reads_shared_run(item, run)}
        unlisted = sorted(readers - set(modules))
        if unlisted:
            raise pytest.UsageError(f'{unlisted} read the session fixture {run!r}: add them to '
                                    f'SHARED_RUN_MODULES[{run!r}] in {__file__}, so that one worker runs them all')


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Check the table; in a worker, order the tests unit by unit, the units holding slow tests first."""
    check_shared_run_modules(items)
    if not in_worker():
        return
    slow_units = {work_unit(item.nodeid) for item in items if item.get_closest_marker('slow')}
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        first_index.setdefault(work_unit(item.nodeid), index)

    def position(item: pytest.Item) -> tuple[bool, int]:
        unit = work_unit(item.nodeid)
        return unit not in slow_units, first_index[unit]

    items.sort(key=position)  # stable: the tests of a unit keep their order
