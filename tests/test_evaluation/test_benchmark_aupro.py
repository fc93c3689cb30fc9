import math
import re
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'benchmark_aupro.py'


def test_benchmark_reports_equal_values_times_and_memory():
    completed = subprocess.run([sys.executable, str(TOOL), '--num', '12', '--size', '48', '--repeat', '2'],
                               capture_output=True, text=True, check=True, timeout=120)
    output = completed.stdout
    assert output.startswith('12 maps of 48x48 float32')
    values = re.search(r'AU-PRO@0.3  reference (\S+)  shipped (\S+)  difference (\S+)  \(fresh process: (\S+)\)',
                       output)
    reference, shipped, difference, fresh = (float(group) for group in values.groups())
    assert 0.0 < reference < 1.0
    assert abs(shipped - reference) < 1e-9 and abs(difference) < 1e-9 and fresh == shipped
    times = re.search(r'time       reference (\S+) s  shipped (\S+) s  speed-up (\S+)x', output)
    reference_seconds, shipped_seconds, speed_up = (float(group) for group in times.groups())
    # The speed-up is reference / shipped time: consistent with the printed times within their rounding (0.0005 s;
    # speed-up 0.05).
    upper = (reference_seconds + 5e-4) / (shipped_seconds - 5e-4) if shipped_seconds > 5e-4 else math.inf
    assert max(reference_seconds - 5e-4, 0.0) / (shipped_seconds + 5e-4) - 0.05 <= speed_up <= upper + 0.05
    assert re.search(r'numpy peak reference [\d.]+ MiB  shipped [\d.]+ MiB', output)
    rss = re.search(r'fresh process holding the inputs, shipped: peak RSS (\d+) MiB \((\d+) MiB', output)
    assert int(rss.group(1)) >= int(rss.group(2)) > 0
