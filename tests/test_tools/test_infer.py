"""tools/infer.py on a tiny trained CRD: a category root with bad samples, one sample, the threshold flag, --help."""
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_crd_model import HEIGHT, WIDTH

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'infer.py'


@pytest.fixture(scope='module')
def infer_tool():
    spec = importlib.util.spec_from_file_location('mmad_infer_tool', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def read_rows(out: Path) -> list[dict]:
    with open(out / 'results.csv') as file:
        return list(csv.DictReader(file))


def test_category_root_with_bad_samples(tiny_crd, infer_tool, tmp_path):
    root = tmp_path / 'category'
    shutil.copytree(tiny_crd['category_dir'] / 'test', root / 'test')
    (root / 'test' / 'dent' / 'xyz' / '001.tiff').unlink()  # missing modality
    (root / 'test' / 'crack' / 'rgb' / '001.png').write_bytes(b'not a png')  # unreadable
    out = tmp_path / 'out'
    skipped = r'skipped: sample test/dent/001: missing modality xyz; the test pipeline reads rgb, xyz \(got rgb\)'
    with pytest.warns(UserWarning, match=skipped):
        infer_tool.main([str(tiny_crd['config']), str(tiny_crd['checkpoint']), str(root), '--out', str(out),
                         '--batch-size', '3'])
    rows = read_rows(out)
    assert [row['name'] for row in rows] == sorted(row['name'] for row in rows) and len(rows) == 8
    failed = {row['name']: row['error'] for row in rows if row['status'] == 'failed'}
    assert set(failed) == {'test/dent/001', 'test/crack/001'}
    assert 'missing modality xyz; the test pipeline reads rgb, xyz' in failed['test/dent/001']
    assert 'is not a readable PNG image' in failed['test/crack/001']
    threshold = float(rows[0]['threshold'])
    for row in rows:
        if row['status'] == 'ok':
            assert int(row['decision']) == int(float(row['score']) > threshold)
            assert row['label'] == ('anomalous' if row['decision'] == '1' else 'good')
            assert float(row['rgb_score']) > 0 and float(row['depth_score']) > 0
    overlays = sorted(path.name for path in (out / 'overlays').iterdir())
    assert len(overlays) == 6 and 'test_good_000.png' in overlays and 'test_crack_001.png' not in overlays
    panel = cv2.imread(str(out / 'overlays' / 'test_crack_000.png'))
    # header, title bars, 6 tiles: rgb, depth, 2 branch maps, the fused map, the mask
    assert panel.shape[:2] == (24 + 18 + round(HEIGHT * 256 / WIDTH), 256 * 6)
    content = json.loads((out / 'results.json').read_text())
    assert content['summary']['samples'] == 8 and content['summary']['failed'] == 2
    assert content['summary']['scored'] == 6 and content['summary']['images_per_second'] > 0
    assert content['threshold_rule'] == 'quantile' and content['threshold'] == threshold


def test_one_sample_by_its_files_and_the_threshold_flag(tiny_crd, infer_tool, tmp_path, capsys):
    folder = tiny_crd['category_dir'] / 'test' / 'color'
    out = tmp_path / 'one'
    infer_tool.main([str(tiny_crd['config']), str(tiny_crd['checkpoint']), '--rgb', str(folder / 'rgb' / '000.png'),
                     '--xyz', str(folder / 'xyz' / '000.tiff'), '--out', str(out), '--threshold=-1e9'])
    (row, ) = read_rows(out)
    assert row['name'] == '000' and row['status'] == 'ok' and row['decision'] == '1'
    assert float(row['threshold']) == -1e9
    assert 'Inference summary' in capsys.readouterr().out
    assert json.loads((out / 'results.json').read_text())['threshold_rule'] == 'manual'
    # a file inside a modality folder names its sample; a work dir stands for its last checkpoint
    infer_tool.main([str(tiny_crd['config']), str(tiny_crd['work_dir']), str(folder / 'rgb' / '001.png'),
                     '--out', str(out), '--no-overlays'])
    (row, ) = read_rows(out)
    assert row['name'] == 'color/001' and np.isfinite(float(row['score']))
    assert json.loads((out / 'results.json').read_text())['checkpoint'] == str(tiny_crd['checkpoint'])


def test_nothing_scored_and_bad_paths_end_with_one_line(tiny_crd, infer_tool, tmp_path):
    with pytest.raises(SystemExit, match=r'infer.py: error: .*nowhere does not exist; expected a sample file'):
        infer_tool.main([str(tiny_crd['config']), str(tiny_crd['checkpoint']), str(tmp_path / 'nowhere')])
    folder = tmp_path / 'bad' / 'rgb'
    folder.mkdir(parents=True)
    (folder / '000.png').write_bytes(b'')
    with pytest.warns(UserWarning, match='skipped'), \
            pytest.raises(SystemExit, match='none of the 1 samples could be scored'):
        infer_tool.main([str(tiny_crd['config']), str(tiny_crd['checkpoint']), str(tmp_path / 'bad'), '--out',
                         str(tmp_path / 'out')])


def test_help_imports_no_torch():
    code = (f'import runpy, sys; sys.argv = ["infer.py", "--help"]\n'
            f'try:\n    runpy.run_path({str(TOOL)!r}, run_name="__main__")\n'
            'except SystemExit:\n    pass\n'
            'print("torch" in sys.modules)')
    finished = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert 'usage: infer.py' in finished.stdout and finished.stdout.strip().endswith('False')
