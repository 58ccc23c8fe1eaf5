"""Accuracy predictor (ChamNet, Dai et al. 2018, Sec. 4.1): train a few architectures,
fit a Gaussian process on their encodings, choose what to train by Bayesian optimisation.

The entry point for "the best network under each budget": ``pick_under_budgets`` (module
``budgeted``: budget-aware expected improvement, leave-one-out model choice on the
lookups (``surrogate``), verification of the top contenders; the pick is the best
*observed* network), with prior features that cost no training (``proxies``: zero-cost
proxies; ``pricing``: the pool's latency on a target). ``synthetic``: tables with a known
best under every budget, for tests.

Modules (one job each): ``journal`` (append-only JSON-lines record of finished
trainings), ``datasets`` (offline Fashion-MNIST / digits), ``trainer`` (arch -> accuracy
and the journaled, executor-agnostic runner), ``predictor`` (GP and MLP, fit/predict,
JSON save), ``sampling`` (imbalanced Sobol start + batched BO: ``sample_and_fit``),
``tasks`` (the task registry), ``nasbench`` (NAS-Bench-Macro: packaged table, tabular task), ``evaluate`` (ranking metrics and
cross-validation), ``cli`` (the ``accuracy`` subcommand).

Importing this package loads only numpy; torch, scikit-learn, scipy and filelock load
when first used.
"""

from .budgeted import BudgetedResult, BudgetPick, pick_under_budgets
from .journal import Journal, JournalError
from .predictor import GPPredictor, MLPPredictor, make_predictor
from .sampling import imbalanced_sobol, sample_and_fit
from .trainer import (
    CommandTrainer,
    FunctionTrainer,
    ProxyTaskTrainer,
    SequentialExecutor,
    TrainResult,
    Trainer,
    train_archs,
)
from .tasks import TASKS, make_trainer

__all__ = [
    "pick_under_budgets", "BudgetedResult", "BudgetPick", "Journal", "JournalError", "GPPredictor", "MLPPredictor", "make_predictor",
    "imbalanced_sobol", "sample_and_fit", "CommandTrainer", "FunctionTrainer",
    "ProxyTaskTrainer", "SequentialExecutor", "TrainResult", "Trainer", "make_trainer",
    "train_archs", "TASKS",
]
