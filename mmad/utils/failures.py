"""Messages for failures that are not bugs of the code: a full disk, a data-loader worker that died or failed.

Shared by ``tools/train.py`` and ``tools/test.py``: each turns such a failure into one explanation instead of a
traceback.
"""
from __future__ import annotations

import errno
import re

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DISK_FULL_MESSAGES = ('No space left on device', 'Disk quota exceeded', 'File too large')
# torch re-raises a worker's own exception as "Caught <type> in DataLoader worker process <n>.\nOriginal Traceback".
WORKER_EXCEPTION = re.compile(r'Caught (\w+) in DataLoader worker process (\d+)')
# A worker process that was killed or vanished: "DataLoader worker (pid 123) is killed by signal: Killed.",
# "DataLoader worker (pid(s) 123) exited unexpectedly".
WORKER_DEATH = re.compile(r'DataLoader worker \(pid')


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from or during, outermost first."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says that the disk, a quota or a file-size limit is full."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in DISK_FULL_MESSAGES)


def worker_exception_summary(message: str) -> str:
    """The last line of the worker's original traceback (its exception type and text), or the whole message."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[-1] if lines else message


def describe_environment_failure(error: BaseException, fallback_target: str = 'the work dir') -> str | None:
    """What happened, for a full disk, a failing data-loader worker or a dead one; None for any other failure.

    Args:
        error: The exception that stopped the run (wrapping exceptions are searched too).
        fallback_target: Named as the file being written when the disk error does not name one.

    Returns:
        One explanation with what to do, or None when the failure is none of these.
    """
    chain = exception_chain(error)
    full_disk = next((err for err in chain if is_disk_full(err)), None)
    if full_disk is not None:
        target = getattr(full_disk, 'filename', None) or fallback_target
        reason = getattr(full_disk, 'strerror', None) or str(full_disk)
        return (f'the disk is full (or a quota or file-size limit was reached) while writing {target} ({reason}). '
                'Free space (or move the work dir) before running again.')
    worker_error = next((err for err in chain if WORKER_EXCEPTION.search(str(err))), None)
    if worker_error is not None:
        worker = WORKER_EXCEPTION.search(str(worker_error)).group(2)
        return (f'data-loader worker {worker} failed while loading a sample: '
                f'{worker_exception_summary(str(worker_error))}. Fix or remove that file (the worker process itself '
                'did not crash).')
    worker_death = next((err for err in chain if WORKER_DEATH.search(str(err))), None)
    if worker_death is not None:
        return (f'a data-loader worker process died: {worker_death}. The usual causes are the kernel\'s '
                'out-of-memory killer (see `dmesg`; lower the dataloader\'s num_workers or batch_size), a crash in a '
                'transform or a native library, or a too small /dev/shm in containers (docker --shm-size).')
    return None
