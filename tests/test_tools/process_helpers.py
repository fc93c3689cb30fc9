"""Start the tools in subprocesses with a hard timeout, always killing every process they started."""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
PLUGIN_DIR = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 240


@dataclass
class Finished:
    returncode: int
    output: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def tool_env(**extra: str) -> dict[str, str]:
    """Environment of a tool process: one thread, the repo and the test plugins importable."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1', PYTHON=sys.executable)
    # The launch scripts run `python`: make it this interpreter even when its venv is not activated.
    env['PATH'] = os.pathsep.join([str(Path(sys.executable).parent), env.get('PATH', '')])
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), str(PLUGIN_DIR), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    env.update(extra)
    return env


def start(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``command`` in its own process group, output (stdout + stderr) to a pipe."""
    return subprocess.Popen(command, cwd=cwd, env=env or tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of ``process`` (torchrun and its workers included)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait(process: subprocess.Popen, timeout: float = DEFAULT_TIMEOUT) -> Finished:
    """Wait for ``process``; kill its whole group afterwards, or at the timeout (then raise)."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        kill_group(process)
        output, _ = process.communicate()
        raise AssertionError(f'{process.args} ran over {timeout} s and was killed; output:\n{output[-6000:]}') \
            from expired
    finally:
        kill_group(process)
    return Finished(process.returncode, output)


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT) -> Finished:
    return wait(start(command, cwd, env), timeout)


def run_ok(command: list[str], cwd: Path, env: dict[str, str] | None = None,
           timeout: float = DEFAULT_TIMEOUT) -> Finished:
    finished = run(command, cwd, env, timeout)
    assert finished.returncode == 0, f'{command} exited with {finished.returncode}:\n{finished.output[-6000:]}'
    return finished


def python_tool(script: str, *args: str) -> list[str]:
    return [sys.executable, str(TOOLS / script), *args]


def load_tool(relative_path: str):
    """Import a script of tools/ (not a package) as a module."""
    path = TOOLS / relative_path
    spec = importlib.util.spec_from_file_location(f'mmad_tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_all(commands: list[tuple[list[str], Path, dict[str, str] | None]],
            timeout: float = DEFAULT_TIMEOUT) -> list[Finished]:
    """Run ``(command, cwd, env)`` triples at the same time; every process group is killed at the end."""
    processes = []
    try:
        for command, cwd, env in commands:
            processes.append(start(command, cwd, env))
        return [wait(process, timeout) for process in processes]
    finally:
        for process in processes:
            kill_group(process)
