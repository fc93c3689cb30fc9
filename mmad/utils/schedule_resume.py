"""Resume with the schedule length of the current config, not the one saved in the checkpoint.

mmengine fills a parameter scheduler's ``end`` from ``train_cfg.max_epochs`` when the config leaves it out, saves
it in each checkpoint and restores it on resume. Resuming with a larger ``max_epochs`` then keeps the old end: the
learning rate stops changing where the first run would have ended. :class:`ScheduleFollowingRunner` keeps the
progress (step count, current values) from the checkpoint and takes the schedule's length (``begin``, ``end``,
``T_max``, ``total_iters``) from the current config, logging every change; the step the first run skipped at its
old end is applied, so the values per epoch equal those of an uninterrupted run.
"""
from __future__ import annotations

from mmengine.optim import _ParamScheduler
from mmengine.runner import Runner

SCHEDULE_LENGTH_ATTRIBUTES = ('begin', 'end', 'T_max', 'total_iters')


def built_schedulers(param_schedulers) -> list[tuple[str, _ParamScheduler]]:
    """(name, scheduler) of every built scheduler in a list, or a dict of lists (one per optimiser)."""
    if isinstance(param_schedulers, dict):
        groups = param_schedulers.items()
    else:
        groups = [('', param_schedulers or [])]
    return [(f'{group}[{index}]' if group else f'[{index}]', scheduler) for group, schedulers in groups
            for index, scheduler in enumerate(schedulers) if isinstance(scheduler, _ParamScheduler)]


def schedule_lengths(param_schedulers) -> dict[str, dict[str, int]]:
    """Name -> the length attributes of each built scheduler."""
    return {name: {attribute: getattr(scheduler, attribute) for attribute in SCHEDULE_LENGTH_ATTRIBUTES
                   if hasattr(scheduler, attribute)}
            for name, scheduler in built_schedulers(param_schedulers)}


def restore_schedule_lengths(param_schedulers, configured: dict[str, dict[str, int]]) -> list[str]:
    """Set the length attributes back to ``configured``; return one line per scheduler that changed.

    Steps the checkpoint's run skipped because they fell past its ``end`` (the step after its last epoch) are
    applied now when they fall inside the configured schedule, so the values match an uninterrupted run.
    """
    changes = []
    for name, scheduler in built_schedulers(param_schedulers):
        loaded_end = scheduler.end
        for attribute, value in configured.get(name, {}).items():
            loaded = getattr(scheduler, attribute)
            if loaded != value:
                setattr(scheduler, attribute, value)
                changes.append(f'param_scheduler{name} ({type(scheduler).__name__}).{attribute}: {loaded} in the '
                               f'checkpoint, {value} from the config')
        _apply_skipped_steps(scheduler, loaded_end)
    return changes


def _apply_skipped_steps(scheduler: _ParamScheduler, loaded_end: int) -> None:
    """Apply the steps numbered ``loaded_end`` .. the scheduler's step count that now lie before its ``end``."""
    for _ in range(max(loaded_end, scheduler.begin), min(scheduler._global_step, scheduler.end - 1) + 1):
        scheduler.last_step += 1
        for group, value in zip(scheduler.optimizer.param_groups, scheduler._get_value()):
            group[scheduler.param_name] = value
    scheduler._last_value = [group[scheduler.param_name] for group in scheduler.optimizer.param_groups]


class ScheduleFollowingRunner(Runner):
    """mmengine's Runner whose ``resume`` keeps the current config's schedule lengths (see the module doc)."""

    def resume(self, filename: str, resume_optimizer: bool = True, resume_param_scheduler: bool = True,
               map_location='default') -> None:
        """Resume from ``filename`` (see mmengine's ``Runner.resume``), then restore the configured lengths."""
        configured = schedule_lengths(self.param_schedulers)
        super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        if not resume_param_scheduler:
            return
        for change in restore_schedule_lengths(self.param_schedulers, configured):
            self.logger.info(f'Resumed schedule follows the config: {change}')
