"""write_bytes / write_text / write_image: every failed write raises naming the file, none leaves a partial file."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmad.utils.fileio import write_bytes, write_image, write_text

REPO = Path(__file__).resolve().parents[2]

# A real failing write: files larger than 2 KiB are refused by the kernel (EFBIG), as a full disk refuses (ENOSPC).
WRITE_UNDER_FILE_SIZE_LIMIT = """
import resource, signal, sys
import numpy as np
from mmad.utils.fileio import write_image
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
try:
    write_image(sys.argv[1], noise)
except OSError as error:
    print(f'errno={error.errno} filename={error.filename} message={error}')
"""


def test_image_round_trip(tmp_path):
    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    path = tmp_path / 'new' / 'folder' / 'image.png'
    write_image(path, image)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), image)
    assert os.listdir(path.parent) == ['image.png']


def test_text_round_trip(tmp_path):
    write_text(tmp_path / 'metrics.json', '{"a": 1}')
    assert (tmp_path / 'metrics.json').read_text() == '{"a": 1}'


def test_failed_write_under_a_file_size_limit_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / 'heatmaps' / 'crack_000.png'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run([sys.executable, '-c', WRITE_UNDER_FILE_SIZE_LIMIT, str(target)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f'errno={errno.EFBIG} filename={target} ' in result.stdout
    assert f"File too large while writing: '{target}'" in result.stdout
    assert os.listdir(target.parent) == []


def test_failed_write_keeps_errno_and_names_the_file(tmp_path):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_bytes(b'')
    with pytest.raises(OSError, match=r"while writing: '.*not_a_folder/metrics\.json'") as error:
        write_bytes(blocker / 'metrics.json', b'{}')
    assert error.value.errno in (errno.ENOTDIR, errno.EEXIST)
    assert error.value.filename == str(blocker / 'metrics.json')


def test_image_that_cannot_be_encoded_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r'shape \(4, 4, 3\) .* as \.unknown for .*x\.unknown'):
        write_image(tmp_path / 'x.unknown', np.zeros((4, 4, 3), np.uint8))
    assert os.listdir(tmp_path) == []
