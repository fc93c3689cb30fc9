"""Readable console logs: one short line per logging interval, no known third-party deprecation notices.

- :class:`ConciseLogProcessor` (``log_processor = dict(type='ConciseLogProcessor')``) leaves the per-part losses
  (``rgb.loss_decoder``, ...) out of the console line; the scalar log (``vis_data/scalars.json``) keeps all of them.
- :func:`silence_known_notices` filters mmengine's own deprecation notices, by their text, from a logger.
"""
from __future__ import annotations

import logging
import re

from mmengine.runner import LogProcessor

from mmad.registry import LOG_PROCESSORS

# "  rgb.loss_decoder: 1.1661" in mmengine's console line: a loss of one part of a branch.
PART_LOSS_ITEM = re.compile(r'\s+[\w/]+\.loss_\w+: \S+')
# Printed by mmengine itself on every run with the default checkpoint hook, about its own internals.
KNOWN_NOTICES = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


@LOG_PROCESSORS.register_module()
class ConciseLogProcessor(LogProcessor):
    """mmengine's LogProcessor whose console line shows the total and per-branch losses, not per-part ones."""

    def get_log_after_iter(self, runner, batch_idx: int, mode: str) -> tuple[dict, str]:
        """The scalar tag and console line of mmengine, with the per-part loss items removed from the line."""
        tag, log_str = super().get_log_after_iter(runner, batch_idx, mode)
        return tag, PART_LOSS_ITEM.sub('', log_str)


class KnownNoticeFilter(logging.Filter):
    """Drops log records whose message contains one of ``KNOWN_NOTICES``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for a known notice."""
        message = record.getMessage()
        return not any(notice in message for notice in KNOWN_NOTICES)


def silence_known_notices(logger: logging.Logger) -> None:
    """Add :class:`KnownNoticeFilter` to ``logger`` (once)."""
    if not any(isinstance(existing, KnownNoticeFilter) for existing in logger.filters):
        logger.addFilter(KnownNoticeFilter())
