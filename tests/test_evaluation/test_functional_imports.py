import subprocess
import sys


def test_functional_imports_neither_torch_nor_open3d():
    code = ('import sys; import mmad.evaluation.functional; '
            'print(sorted(name for name in ("torch", "open3d", "mmengine") if name in sys.modules))')
    output = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == '[]'
