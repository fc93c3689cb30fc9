"""Training engine: hooks, model wrappers and optimiser-wrapper constructors; importing registers them."""
from .hooks import *  # noqa: F401,F403
from .model_wrappers import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
