"""Drift stage: compare the new prepared training data with the data the champion was trained on.

The champion keeps a profile of its training data (`data_profile.json`, written by the promotion gate): image shape,
class shares, and a seeded sample of per-image mean intensity and ink fraction. This stage profiles the new
`data/prepared/train.npz` the same way and scores each feature: class shares by their total variation distance (and
any class that vanished), the two per-image distributions by the two-sample Kolmogorov-Smirnov statistic
(scipy.stats.ks_2samp). Above `drift.warn` the run goes on and says so (retraining is the remedy for drift); above
`drift.fail`, or with a class gone, the feed is probably broken and the stage fails (exit 3) before any training. It
always writes `reports/drift.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

from vaeops.bundle.manifest import PROFILE
from vaeops.core.artifacts import Artifact, dump_artifact, read_artifact, write_artifact
from vaeops.core.errors import ValidationFailed
from vaeops.core.params import Params, load_params
from vaeops.dataset.profile import FEATURES, DataProfile, profile
from vaeops.dataset.splits import load_split


class DriftReport(Artifact):
    """`reports/drift.json`: the verdict, each feature's score against the champion's data, and the thresholds."""

    level: Literal["ok", "warn", "fail"]
    comparable: bool
    features: dict[str, dict[str, float | list[str]]]
    scores: dict[str, float] = {}
    messages: list[str]
    reference: str
    warn: float
    fail: float
    images: int


class DriftGate(Artifact):
    """`reports/drift_gate.json`: the verdict alone, what the train stages depend on."""

    level: Literal["ok", "warn", "fail"]


class DriftFailed(ValidationFailed):
    """The new data moved too far from the champion's training data: probably a broken feed."""


def compare(reference: dict[str, Any], current: dict[str, Any], warn: float, fail: float) -> dict[str, Any]:
    """Score every feature against the reference; the level is ok, warn or fail."""
    from scipy.stats import ks_2samp

    if reference["image_shape"] != current["image_shape"]:
        return {
            "level": "warn",
            "comparable": False,
            "features": {},
            "messages": [
                f"image shape {reference['image_shape']} -> {current['image_shape']}: another input "
                "contract, nothing to compare (the promotion gate decides on the contract)"
            ],
        }
    old, new = reference["class_shares"], current["class_shares"]
    labels = sorted(set(old) | set(new), key=int)
    tv = 0.5 * sum(abs(old.get(c, 0.0) - new.get(c, 0.0)) for c in labels)
    gone = [c for c in labels if old.get(c, 0.0) > 0 and new.get(c, 0.0) == 0]
    features = {"class_shares": {"total_variation": tv, "classes_gone": gone}}
    for name in FEATURES:
        test = ks_2samp(reference[name], current[name])
        features[name] = {"ks_statistic": float(test.statistic), "p_value": float(test.pvalue)}
    scores = {"class_shares": tv, **{name: features[name]["ks_statistic"] for name in FEATURES}}
    level = "fail" if gone or max(scores.values()) > fail else "warn" if max(scores.values()) > warn else "ok"
    messages = [f"class(es) {', '.join(gone)} gone"] if gone else []
    messages += [
        f"{name}: {score:.3f} > {'fail' if score > fail else 'warn'} {fail if score > fail else warn}"
        for name, score in scores.items()
        if score > warn
    ]
    return {"level": level, "comparable": True, "scores": scores, "features": features, "messages": messages}


def drift(params: Params) -> dict[str, Any]:
    """Stage function: write reports/drift.json; raise DriftFailed above drift.fail."""
    cfg = params.drift
    images, labels = load_split(params.data.out_dir, "train")
    current = profile(images, labels, params.validate.ink_threshold, cfg.sample)
    reference_path = Path(params.promote.champion_dir) / PROFILE
    if reference_path.is_file():
        reference = read_artifact(reference_path, DataProfile, "champion data profile", ValidationFailed)
        report = compare(reference.model_dump(), current, cfg.warn, cfg.fail)
    else:
        report = {
            "level": "ok",
            "comparable": False,
            "features": {},
            "messages": [f"no champion data profile at {reference_path}: nothing to compare yet"],
        }
    report = {
        **report,
        "reference": str(reference_path),
        "warn": cfg.warn,
        "fail": cfg.fail,
        "images": current["images"],
    }
    checked = DriftReport.model_validate(report)
    write_artifact(cfg.report, checked)
    # The verdict alone, which training depends on: a new champion changes the scores, not (on the same data) the
    # verdict, so a rerun of this stage against it does not retrain every model.
    write_artifact(cfg.gate, DriftGate(level=checked.level))
    report = dump_artifact(checked)
    if report["level"] == "fail":
        raise DriftFailed(
            f"the new training data drifted from the champion's: {'; '.join(report['messages'])} "
            f"(report: {cfg.report}); fix the feed, or raise drift.fail if the change is real"
        )
    return {"level": report["level"], "messages": "; ".join(report["messages"])}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond --params: thresholds live in the `drift` section."""


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops drift`: compare and print the verdict (exit 3 above drift.fail)."""
    print(json.dumps(drift(load_params(args.params, args.overrides)), indent=2))
