"""docs/tutorials/own_data.md: its fenced bash commands, run as written (one epoch), give a model, metrics, overlays."""
import csv
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / 'docs' / 'tutorials' / 'own_data.md'
SMALL_TRAIN = ('--cfg-options train_cfg.max_epochs=1 train_dataloader.num_workers=0 '
               'train_dataloader.persistent_workers=False val_stats_dataloader.num_workers=0 '
               'test_dataloader.num_workers=0')
SMALL_TEST = '--cfg-options test_dataloader.num_workers=0'


def tutorial_commands() -> list[str]:
    """The lines of the tutorial's fenced ``bash`` blocks, in order."""
    blocks = re.findall(r'^```bash\n(.*?)^```', TUTORIAL.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def small(command: str) -> str:
    """The command with the overrides of a small run: one epoch, no dataloader workers."""
    if command.startswith('python tools/train.py'):
        return f'{command} {SMALL_TRAIN}'
    if command.startswith('python tools/test.py'):
        return f'{command} {SMALL_TEST}'
    return command


def snapshot(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in sorted(root.rglob('*'))}


def test_tutorial_lists_the_whole_workflow():
    commands = tutorial_commands()
    assert [command.split()[1] for command in commands if command.startswith('python ')] == [
        '-c', 'tools/analysis_tools/browse_dataset.py', 'tools/train.py', 'tools/train.py', 'tools/test.py',
        'tools/infer.py', 'tools/infer.py']
    for config in re.findall(r'configs/folder/\S+\.py', TUTORIAL.read_text()):
        assert (REPO / config).is_file(), config


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    """In a fresh folder (tools/ and configs/ linked), every command succeeds and leaves the user's folders as is."""
    for name in ('tools', 'configs'):
        (tmp_path / name).symlink_to(REPO / name)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    commands = tutorial_commands()
    data_snapshot = None
    for command in commands:
        result = subprocess.run(['bash', '-c', small(command)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f'{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
        if data_snapshot is None:
            data_snapshot = snapshot(tmp_path / 'data' / 'my_part')
    assert snapshot(tmp_path / 'data' / 'my_part') == data_snapshot
    work_dir = tmp_path / 'work_dirs' / 'my_part'
    assert len(list((work_dir / 'browse').rglob('*.png'))) == 4
    assert Path((work_dir / 'last_checkpoint').read_text().strip()).name == 'epoch_1.pth'
    metrics = json.loads((work_dir / 'test' / 'metrics.json').read_text())
    assert set(metrics['fused']) == {'all', 'crack', 'color'} and metrics['fused']['color']['P-AUROC'] is None
    assert any('pixel metrics are not available' in note for note in metrics['notes'])
    for out, name in (('part_014', 'part_014'), ('new_parts', 'part_018')):
        with open(work_dir / out / 'results.csv', newline='') as file:
            rows = list(csv.DictReader(file))
        assert len(rows) == 1 and name in rows[0]['name'] and rows[0]['status'] == 'ok'
        assert float(rows[0]['score']) > 0 and rows[0]['decision'] in ('0', '1')
        assert len(list((work_dir / out / 'overlays').glob('*.png'))) == 1
