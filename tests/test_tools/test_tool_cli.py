"""The tools answer --help at once (heavy imports wait for main) and explain a mistyped config path."""
import time

import pytest
from process_helpers import REPO, python_tool, run

TOOLS = ('train.py', 'test.py')


@pytest.mark.parametrize('tool', TOOLS)
def test_help_answers_without_importing_torch(tool, tmp_path):
    started = time.monotonic()
    finished = run(python_tool(tool, '--help'), tmp_path)
    elapsed = time.monotonic() - started
    assert finished.returncode == 0
    assert '--data-root' in finished.output and '--dry-run' in finished.output
    assert '--no-validate' not in finished.output
    assert elapsed < 3, f'{tool} --help took {elapsed:.1f} s'
    importing = run([*python_tool(tool, '--help')[:1], '-X', 'importtime', *python_tool(tool, '--help')[1:]],
                    tmp_path)
    assert ' torch' not in importing.output and 'mmengine' not in importing.output


@pytest.mark.parametrize('tool, args', [('train.py', []), ('test.py', ['x.pth'])])
def test_config_typo_names_the_closest_configs(tool, args, tmp_path):
    finished = run(python_tool(tool, str(REPO / 'configs' / 'crd' / 'crd_mvtec3d_cokie.py'), *args), tmp_path)
    assert finished.returncode == 1
    last = finished.output.strip().splitlines()[-1]
    assert last.startswith(f'{tool}: error: config file {REPO}/configs/crd/crd_mvtec3d_cokie.py does not exist; '
                           'did you mean ')
    assert 'configs/crd/crd_mvtec3d_cookie.py' in last
    assert 'Traceback' not in finished.output
