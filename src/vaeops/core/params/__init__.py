"""Typed parameters: one pydantic model per params.yaml section, and the loader that reads, overrides and checks them.

`load_params()` is the one way the stages, the CLI (with `-S section.key=value`), `dvc repro` and the Prefect flow read
params.yaml.
"""

from vaeops.core.params.data import DATASETS, DataParams
from vaeops.core.params.drift import DriftParams
from vaeops.core.params.evaluate import EvaluateParams
from vaeops.core.params.export import ExportParams
from vaeops.core.params.loader import (
    DEFAULT_PARAMS_PATH,
    SECTIONS,
    Params,
    add_assignments_option,
    apply_overrides,
    load_params,
    parse_assignments,
    parse_params,
)
from vaeops.core.params.model import MODEL_ACTIVATIONS, MODEL_LIKELIHOODS, ModelParams
from vaeops.core.params.orchestrate import OrchestrateParams
from vaeops.core.params.promote import PromoteParams
from vaeops.core.params.serve import ServeParams
from vaeops.core.params.train import VARIANTS, TrainParams
from vaeops.core.params.validate import ValidateParams

__all__ = [
    "DATASETS",
    "DEFAULT_PARAMS_PATH",
    "MODEL_ACTIVATIONS",
    "MODEL_LIKELIHOODS",
    "SECTIONS",
    "VARIANTS",
    "DataParams",
    "DriftParams",
    "EvaluateParams",
    "ExportParams",
    "ModelParams",
    "OrchestrateParams",
    "Params",
    "PromoteParams",
    "ServeParams",
    "TrainParams",
    "ValidateParams",
    "add_assignments_option",
    "apply_overrides",
    "load_params",
    "parse_assignments",
    "parse_params",
]
