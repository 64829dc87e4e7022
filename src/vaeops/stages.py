"""The one stage registry: every pipeline stage as a reference to its function, read by the CLI and the Prefect flow.

The order is the pipeline's; dvc.yaml has the same stages in the same order (a test and the flow check it with DVC's
own parser). A reference is a dotted path resolved when the stage runs, so `vaeops --help` imports no stage.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def resolve(reference: str) -> Callable[..., Any]:
    """The function behind "package.module:function", imported now."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Parts:
    """A stage whose work splits into independent parts, each a plain function of the params and one unit, that a
    task runner may run anywhere (the flow's `orchestrate.runner: dask`); the joined result equals the stage's own."""

    units: str  # "module:function": params -> the list of units (the training seeds)
    run: str  # "module:function": (params, unit) -> the part's small summary; its files go where the stage's would
    join: str  # "module:function": (params, the parts' summaries in unit order) -> the stage's summary


@dataclass(frozen=True)
class Stage:
    """One dvc.yaml stage: the function it runs, the params it fixes (a foreach item), how the flow retries it."""

    name: str  # the dvc.yaml stage name, foreach items included (train@vae)
    function: str  # "package.module:function", called with the checked Params
    fixed: dict[str, Any] = field(default_factory=dict)  # params this stage sets, as `-S` would
    retries: tuple[float, ...] = ()  # the flow's back-off before each retry of a transient failure
    help: str = ""
    parts: Parts | None = None  # how a task runner may split the stage's work; None = it runs whole

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
        return resolve(self.function)

    def params(self, params_file: str, overrides: dict[str, Any] | None) -> Any:
        """The checked Params this stage runs with: the file, the overrides, the stage's fixed keys on top."""
        from vaeops.core.params import load_params

        return load_params(params_file, {**(overrides or {}), **self.fixed})

    def split(self) -> Parts:
        """Its parts; ValueError for a stage that runs whole."""
        if self.parts is None:
            raise ValueError(f"stage {self.name} has no parts to run")
        return self.parts


def _trains() -> tuple[Stage, ...]:
    return tuple(
        Stage(
            f"train@{variant}",
            "vaeops.training.train:train",
            {"train.variant": variant},
            (10,),
            "train one model variant (-S train.variant=vae|plugin|autoencoder) on the prepared data",
            # each training seed is a part: its checkpoint depends on the seed alone, not on where it runs
            Parts(
                "vaeops.training.train:seeds", "vaeops.training.train:train_seed", "vaeops.training.train:join_seeds"
            ),
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


# A process runs the parts of one checkout at a time (they read paths relative to it): how many run now, and the lock
# that guards the count and the process's directory.
_CHECKOUT = threading.Lock()
_running = [0]


def run_part(
    root: str, params_file: str, name: str, unit: Any, overrides: dict[str, Any] | None, local_rank: int = 0
) -> dict[str, Any]:
    """One part of stage `name` (one training seed) in the checkout at `root`, whatever this process's directory was
    (a Dask worker starts elsewhere): its params with the stage's fixed keys on top, its summary returned."""
    stage = BY_NAME[name]
    parts = stage.split()
    with _CHECKOUT:
        if os.getcwd() != root:
            if _running[0]:
                raise RuntimeError(f"this process runs parts in {os.getcwd()}; it cannot take one in {root} meanwhile")
            os.chdir(root)
        _running[0] += 1
    try:
        return resolve(parts.run)(stage.params(params_file, overrides), unit, local_rank=local_rank)
    finally:
        with _CHECKOUT:
            _running[0] -= 1


def units(name: str, params_file: str, overrides: dict[str, Any] | None) -> list[Any]:
    """The parts of stage `name` under these params (the training seeds of one variant)."""
    stage = BY_NAME[name]
    return list(resolve(stage.split().units)(stage.params(params_file, overrides)))


def commands() -> dict[str, tuple[str, str]]:
    """Every `vaeops` command: the stages' (one per command, so train once) and the tools, in pipeline order."""
    found: dict[str, tuple[str, str]] = {}
    for stage in STAGES:
        found.setdefault(stage.command, (stage.module, stage.help))
    return {**found, **TOOLS}
