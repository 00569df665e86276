"""kdutils: the shared package behind the kd-notebooks.

Notebooks import everything from here::

    import kdutils as kd
    settings = kd.configure("quick", "fashion_mnist", seeds=3)
    exp = kd.Experiment(settings)
    teacher = exp.teacher()
    student = exp.student("kd", seed=0, teacher=teacher)
    metrics = exp.evaluate(student, teacher)
"""

from . import losses, metrics
from .data import DATASETS, ImageData, Split, dataset_names, load_dataset, make_split
from .io import data_root, project_root
from .errors import CorruptRecordError, DatasetMissingError, KDError, NonFiniteLossError, UnknownNameError
from .experiment import Experiment, Run, environment, resolve_device, scalar_metrics
from .methods import METHODS, Batch, Method, Terms, create_method, method_names, register_method
from .models import MODELS, count_parameters, create_model, model_names
from .profiles import PROFILES, Settings, configure
from .results import Results, claims_frame, compare, mean_std_table, read_results, summarize
from .store import RunStore
from .recipe import Recipe
from .train import fit

__version__ = "0.1.0"

__all__ = [
    "losses", "metrics", "DATASETS", "ImageData", "Split", "data_root", "dataset_names", "load_dataset",
    "make_split", "project_root", "CorruptRecordError", "DatasetMissingError", "KDError", "NonFiniteLossError",
    "UnknownNameError", "Experiment", "Run", "environment", "resolve_device", "scalar_metrics", "METHODS",
    "Batch", "Method", "Terms", "create_method", "method_names", "register_method", "MODELS",
    "count_parameters", "create_model", "model_names", "PROFILES", "Settings", "configure", "Results",
    "claims_frame", "compare", "mean_std_table", "read_results", "summarize", "RunStore", "Recipe", "fit",
]  # fmt: skip
