"""Registries of mmad, children of mmengine's root registries.

``locations`` lets ``Registry.build`` import the sub-package that registers a class, so configs
with ``default_scope='mmad'`` build mmad classes without manual imports.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

# Runners and loops.
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['mmad.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmad.engine'])
# Hooks (validation statistics, checkpoint sanitising, visualisation).
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmad.engine'])

# Datasets, samplers and data transforms.
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['mmad.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['mmad.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['mmad.datasets.transforms'])

# Every nn.Module part: encoders, decoders, bottlenecks, fusers, losses, preprocessors, detectors.
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmad.models'])
# Weight initialisers of init_cfg (mmengine's; a child so that the 'mmad' scope resolves without a warning).
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS)
# Key converters of teacher weights files: another library's state dict -> the timm model's (plain callables).
WEIGHT_CONVERTERS = Registry('weight converter', locations=['mmad.models.encoders'])
# Model wrappers for distributed training.
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['mmad.engine'])
# Score aggregators: branch anomaly maps -> one map (nn.Modules owning their fitted state, kept apart from MODELS).
AGGREGATORS = Registry('aggregator', locations=['mmad.models.aggregators'])

# Optimisation.
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['mmad.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['mmad.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, locations=['mmad.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=['mmad.engine'])

# Evaluation.
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['mmad.evaluation.metrics'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['mmad.evaluation.metrics'])

# Visualisation and logging.
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['mmad.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, locations=['mmad.visualization'])
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, locations=['mmad.engine'])
