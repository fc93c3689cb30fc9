"""Every tools/train.py and tools/test.py command of the docs runs as a dry run (config, overrides, datasets, model).

The docs' data root is replaced by a small synthetic MVTec 3D-AD copy of the categories they use, and the teacher
is built without downloading weights; everything else runs as written, so a renamed key or option fails here.
"""
import re
import shlex

import pytest
from process_helpers import REPO, load_tool

from mmad.datasets.synthetic import make_synthetic_mvtec3d

DOCS = ('docs/datasets.md', 'docs/get_started.md')
DOCS_DATA_ROOT = '/datasets/mvtec_3d_anomaly_detection'
TOOL_COMMAND = re.compile(r'python tools/(train|test)\.py [^`\n]*')
tools = {'train': load_tool('train.py'), 'test': load_tool('test.py')}


def docs_commands() -> list[tuple[str, str]]:
    """(doc, command) for each tool command of the docs, continuation lines joined, comments dropped."""
    commands = []
    for doc in DOCS:
        text = (REPO / doc).read_text().replace('\\\n', ' ')
        commands += [(doc, ' '.join(match.group(0).split('#')[0].split())) for match in TOOL_COMMAND.finditer(text)]
    return commands


COMMANDS = docs_commands()


def test_docs_show_data_root_and_category_and_every_loader():
    commands = [command for _, command in COMMANDS]
    assert any('--data-root' in command and '--category' in command for command in commands)
    override = next(command for command in commands if '--cfg-options' in command)
    for loader in ('train_dataloader', 'val_stats_dataloader', 'test_dataloader'):
        assert f'{loader}.dataset.data_root=' in override


@pytest.fixture(scope='module')
def docs_data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('docs_data')
    for category in ('bagel', 'cookie'):
        make_synthetic_mvtec3d(root, category, height=64, width=64, num_train=2, num_val=1, num_test_per_defect=1,
                               defect_types=('crack', ))
    return root


@pytest.mark.slow
@pytest.mark.parametrize('doc, command', COMMANDS, ids=[f'{doc}:{index}' for index, (doc, _) in enumerate(COMMANDS)])
def test_docs_command_runs_as_a_dry_run(doc, command, docs_data_root, capsys):
    words = [word.replace(DOCS_DATA_ROOT, str(docs_data_root)) for word in shlex.split(command)]
    tool = words[1].split('/')[-1].removesuffix('.py')
    if '--data-root' not in words:
        words += ['--data-root', str(docs_data_root)]
    tools[tool].main([*words[2:], '--dry-run', '--cfg-options', 'model.teacher.pretrained=False'])
    assert 'Dry run of configs/crd/' in capsys.readouterr().out
