"""kdutils: the shared package behind the kd-notebooks.

Notebooks import everything from here::

    import kdutils as kd
    settings = kd.configure("quick", "fashion_mnist", seeds=3)
    exp = kd.Experiment(settings)
    teacher = exp.teacher()
    student = exp.student("kd", seed=0, teacher=teacher)
    metrics = exp.evaluate(student, teacher)
"""

from . import papers
from .core.errors import (
    CorruptRecordError,
    DatasetMissingError,
    DeviceError,
    KDError,
    NonFiniteLossError,
    ParameterError,
    StorageError,
    UnknownNameError,
)
from .core.io import data_root, default_figures_dir, project_root
from .evaluation import data_selection, faithfulness
from .evaluation.data_selection import SCORERS, DataSelection, TeacherRows, keep_mask, register_scorer, scorer_names
from .evaluation.evaluations import (
    EVALUATIONS,
    EvalContext,
    attack_protocol,
    describe_attack_protocol,
    describe_faithfulness_protocol,
    evaluation_names,
    register_evaluation,
)
from .evaluation.selection import (
    SELECTIONS,
    DropLeastSignificant,
    DropRandom,
    KeepRandom,
    Selection,
    SignificanceWeights,
    Weighting,
)
from .experiments import costs, pairs
from .experiments.experiment import Experiment, Run, environment, resolve_device, scalar_metrics, visible_devices
from .experiments.parallel import EXECUTORS, Job, executor_names, train_group
from .experiments.parameters import check_parameters
from .inputs.data import DATASETS, ImageData, Split, dataset_names, load_dataset, make_split
from .inputs.models import MODELS, count_parameters, create_model, model_names
from .inputs.recipe import Recipe
from .methods import METHODS, Batch, Method, Terms, create_method, method_names, register_method
from .numerics import attacks, correlation, ibp, losses, metrics
from .report import claims, exercises
from .report.notebook import NotebookContext
from .report.results import (
    DEFAULT_LEVEL,
    Interval,
    Results,
    Verdict,
    best_of_many,
    claim_all,
    claim_better,
    claim_mean_above,
    claim_mean_below,
    claim_non_inferior,
    claim_row,
    claims_frame,
    compare,
    curve_slopes,
    format_mean_std,
    format_values,
    holm,
    mean_interval,
    mean_std_cells,
    mean_std_table,
    paired_interval,
    read_results,
    sign_flip_pvalue,
    slope_table,
    summarize,
)
from .training.profiles import PROFILES, Settings, configure
from .training.store import RunStore
from .training.train import fit

__version__ = "0.1.0"

# Under a batch (``python -m kdutils run`` sets KD_EVENTS) every warning this kernel shows also
# reaches the batch's terminal, whichever API the notebook uses; elsewhere this does nothing.
from .core import events as _events  # noqa: E402

_events.install_warning_hook()

# Where each module lived before the layers became folders (kdutils 3): ``kdutils.store``,
# ``from kdutils.data import load_dataset`` and the like keep working, as the same module objects.
_MOVED = {
    "errors": "core", "io": "core", "registry": "core", "events": "core", "keys": "core",
    "data": "inputs", "models": "inputs", "recipe": "inputs", "runtime": "inputs",
    "losses": "numerics", "correlation": "numerics", "ibp": "numerics", "attacks": "numerics", "metrics": "numerics",
    "train": "training", "store": "training", "profiles": "training",
    "faithfulness": "evaluation", "evaluations": "evaluation", "selection": "evaluation", "data_selection": "evaluation",
    "experiment": "experiments", "parallel": "experiments", "costs": "experiments", "pairs": "experiments",
    "faithful_setup": "experiments", "parameters": "experiments",
    "results": "report", "claims": "report", "plots": "report", "notebook": "report",
}  # fmt: skip


def _alias_moved_modules() -> None:
    import importlib
    import sys

    for old, folder in _MOVED.items():
        module = importlib.import_module(f"{__name__}.{folder}.{old}")
        sys.modules.setdefault(f"{__name__}.{old}", module)
        globals().setdefault(old, module)


_alias_moved_modules()


__all__ = [
    "exercises",
    "losses",
    "correlation",
    "metrics",
    "attacks",
    "ibp",
    "faithfulness",
    "DATASETS",
    "ImageData",
    "Split",
    "data_root",
    "dataset_names",
    "load_dataset",
    "make_split",
    "project_root",
    "CorruptRecordError",
    "DatasetMissingError",
    "KDError",
    "NonFiniteLossError",
    "UnknownNameError",
    "Experiment",
    "Run",
    "environment",
    "resolve_device",
    "scalar_metrics",
    "METHODS",
    "EVALUATIONS",
    "EvalContext",
    "attack_protocol",
    "describe_attack_protocol",
    "describe_faithfulness_protocol",
    "evaluation_names",
    "register_evaluation",
    "Batch",
    "Method",
    "Terms",
    "create_method",
    "method_names",
    "register_method",
    "MODELS",
    "count_parameters",
    "create_model",
    "model_names",
    "PROFILES",
    "Settings",
    "configure",
    "Results",
    "claims_frame",
    "compare",
    "mean_std_table",
    "read_results",
    "summarize",
    "RunStore",
    "Recipe",
    "fit",
    "claims",
    "NotebookContext",
    "SELECTIONS",
    "DropLeastSignificant",
    "DropRandom",
    "KeepRandom",
    "Selection",
    "SignificanceWeights",
    "Weighting",
    "DeviceError",
    "ParameterError",
    "StorageError",
    "visible_devices",
    "default_figures_dir",
    "check_parameters",
    "EXECUTORS",
    "Job",
    "executor_names",
    "train_group",
    "DEFAULT_LEVEL",
    "Interval",
    "Verdict",
    "best_of_many",
    "claim_all",
    "claim_better",
    "claim_mean_above",
    "claim_mean_below",
    "claim_non_inferior",
    "claim_row",
    "format_mean_std",
    "format_values",
    "holm",
    "mean_interval",
    "mean_std_cells",
    "paired_interval",
    "sign_flip_pvalue",
    "pairs",
    "curve_slopes",
    "slope_table",
    "data_selection",
    "costs",
    "papers",
    "SCORERS",
    "DataSelection",
    "TeacherRows",
    "keep_mask",
    "register_scorer",
    "scorer_names",
]
