"""tests/parallel_scheduling.py: the work units of pytest-xdist and the check of the shared-run table."""
from pathlib import Path
from types import SimpleNamespace

import pytest
from parallel_scheduling import SHARED_RUN_MODULES, check_shared_run_modules, reads_shared_run, work_unit

REPO = Path(__file__).resolve().parents[1]


def fake_item(nodeid: str, **scopes: str) -> SimpleNamespace:
    """A collected test with the fixtures ``name=scope`` (what the check reads of a pytest item)."""
    definitions = {name: [SimpleNamespace(scope=scope)] for name, scope in scopes.items()}
    return SimpleNamespace(nodeid=nodeid, fixturenames=list(scopes),
                           _fixtureinfo=SimpleNamespace(name2fixturedefs=definitions))


def test_modules_of_a_shared_run_form_one_unit_and_the_others_their_own():
    assert work_unit('tests/test_tools/test_dist_test.py::test_metrics_agree') == 'ddp_run'
    assert work_unit('tests/test_tools/test_dist_train.py::test_x[1]') == 'ddp_run'
    assert work_unit('tests/test_apis/test_inference.py::test_y') == 'tiny_crd'
    assert work_unit('tests/test_models/test_crd.py::test_z[a::b]') == 'tests/test_models/test_crd.py'


def test_every_listed_module_exists_and_is_listed_once():
    listed = [module for modules in SHARED_RUN_MODULES.values() for module in modules]
    assert len(listed) == len(set(listed))
    assert all((REPO / module).is_file() for module in listed)


def test_only_the_session_fixture_counts_as_reading_a_shared_run(request):
    assert reads_shared_run(fake_item('tests/a.py::t', tiny_run='session'), 'tiny_run')
    assert not reads_shared_run(fake_item('tests/a.py::t', tiny_run='module'), 'tiny_run')
    assert not reads_shared_run(fake_item('tests/a.py::t', tmp_path='function'), 'tiny_run')
    assert not reads_shared_run(request.node, 'tiny_run') and not reads_shared_run(request.node, 'tiny_crd')


def test_a_module_reading_a_shared_run_must_be_listed():
    check_shared_run_modules([fake_item('tests/test_tools/test_dist_train.py::test_a', ddp_run='session'),
                              fake_item('tests/test_models/test_crd.py::test_b', tmp_path='function'),
                              fake_item('tests/test_new.py::test_c', tiny_run='module')])
    with pytest.raises(pytest.UsageError, match=r"\['tests/test_new.py'\] read the session fixture 'tiny_run': add "
                                                r"them to SHARED_RUN_MODULES\['tiny_run'\]"):
        check_shared_run_modules([fake_item('tests/test_new.py::test_c', tiny_run='session')])
