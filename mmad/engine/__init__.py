"""Training engine: hooks and optimiser-wrapper constructors; importing registers them."""
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
