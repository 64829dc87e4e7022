"""The one stage registry: every pipeline stage as a reference to its function, read by the CLI and the Prefect flow.

The order is the pipeline's; dvc.yaml has the same stages in the same order (a test and the flow check it with DVC's
own parser). A reference is a dotted path resolved when the stage runs, so `vaeops --help` imports no stage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Stage:
    """One dvc.yaml stage: the function it runs, the params it fixes (a foreach item), how the flow retries it."""

    name: str  # the dvc.yaml stage name, foreach items included (train@vae)
    function: str  # "package.module:function", called with the checked Params
    fixed: dict[str, Any] = field(default_factory=dict)  # params this stage sets, as `-S` would
    retries: tuple[float, ...] = ()  # the flow's back-off before each retry of a transient failure
    help: str = ""

    @property
    def command(self) -> str:
        """The `vaeops` command that runs it."""
        return self.name.split("@")[0]

    @property
    def module(self) -> str:
        """The module holding the stage function (and the command's add_arguments / run_cli)."""
        return self.function.split(":")[0]

    def load(self) -> Callable[..., Any]:
        """The stage function itself."""
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)


def _trains() -> tuple[Stage, ...]:
    return tuple(
        Stage(
            f"train@{variant}",
            "vaeops.training.train:train",
            {"train.variant": variant},
            (10,),
            "train one model variant (-S train.variant=vae|plugin|autoencoder) on the prepared data",
        )
        for variant in ("vae", "plugin", "autoencoder")
    )


STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare",
        "vaeops.data.prepare:prepare",
        retries=(5, 30),
        help="load the configured data set, split it, write data/prepared/",
    ),
    # Verdicts on the data: a retry would give the same answer.
    Stage(
        "validate",
        "vaeops.data.validate:validate",
        help="check every prepared split with Great Expectations; non-zero exit on failure",
    ),
    Stage(
        "drift",
        "vaeops.data.drift:drift",
        help="compare the new training data with the champion's; non-zero exit on far drift",
    ),
    *_trains(),
    Stage(
        "evaluate",
        "vaeops.evaluation.evaluate:evaluate",
        retries=(10,),
        help="compare sampled and mean reconstructions, estimate the NLL, write the report",
    ),
    Stage(
        "export", "vaeops.export.export:export", retries=(10,), help="export ONNX graphs and check them against PyTorch"
    ),
    Stage(
        "promote",
        "vaeops.lifecycle.promote:promote",
        retries=(10,),
        help="promote the exported model to champion if it passes the gate",
    ),
)
BY_NAME = {stage.name: stage for stage in STAGES}

# Commands that are not pipeline stages: module (with add_arguments / run_cli) and help.
TOOLS: dict[str, tuple[str, str]] = {
    "plots": ("vaeops.evaluation.dvc_plots", "write `dvc plots show` as an HTML page that renders with no network"),
    "serve": ("vaeops.serving.serve", "serve the exported ONNX model over HTTP (JSON API, Open Inference Protocol)"),
    "triton-repo": ("vaeops.serving.triton", "write the served model as an NVIDIA Triton model repository"),
    "champion": ("vaeops.lifecycle.champions", "list past champions, roll back to one, pin or unpin the champion"),
    "verify": ("vaeops.lifecycle.verify", "check data, export and champions against their sha256 (after a checkout)"),
}


def commands() -> dict[str, tuple[str, str]]:
    """Every `vaeops` command: the stages' (one per command, so train once) and the tools, in pipeline order."""
    found: dict[str, tuple[str, str]] = {}
    for stage in STAGES:
        found.setdefault(stage.command, (stage.module, stage.help))
    return {**found, **TOOLS}
