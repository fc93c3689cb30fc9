"""Environment helpers: register every mmad module and set the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmad sub-package that registers something.

    Args:
        init_default_scope: Whether to make ``'mmad'`` the default registry scope.
    """
    import mmad.datasets  # noqa: F401
    import mmad.engine  # noqa: F401
    import mmad.evaluation.metrics  # noqa: F401
    import mmad.models  # noqa: F401
    import mmad.visualization  # noqa: F401
    from mmad.utils.checkpoint import register_safe_checkpoint_loader

    register_safe_checkpoint_loader()

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None or not DefaultScope.check_instance_created('mmad')
    if never_created:
        DefaultScope.get_instance('mmad', scope_name='mmad')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'mmad':
        warnings.warn(f'The current default scope "{current_scope.scope_name}" is not "mmad"; '
                      '`register_all_modules` forces it to "mmad".', stacklevel=2)
        new_instance_name = f'mmad-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmad')
