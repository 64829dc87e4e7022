"""Promotion gate: a new export replaces the champion that `vaeops serve` reads only if it passes every check."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from vaeops.bundle.install import (
    INSTALL_RECORD,
    PLOT_PREFIX,
    Contract,
    InstallRecord,
    contract_change,
    read_installed,
)
from vaeops.bundle.manifest import (
    CHECKPOINT,
    DECISION,
    MANIFEST,
    METRICS,
    PROFILE,
    REPORT,
    Manifest,
    read_manifest,
    read_verified,
)
from vaeops.bundle.reports import EvaluationMetrics, ModelVerdict, PromotionDecision
from vaeops.core.artifacts import dump_artifact, read_artifact, write_artifact
from vaeops.core.errors import DataError
from vaeops.core.fileio import atomic_directory, read_json_object, write_json_atomic
from vaeops.core.params import Params, load_params
from vaeops.dataset.profile import profile
from vaeops.dataset.splits import load_split
from vaeops.lifecycle import history, rescore, writer


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Read one JSON object the gate needs; a missing or unreadable file is an error naming the stage that makes it."""
    return read_json_object(path, what, DataError, "run the pipeline up to this stage first")


def model_metrics(path: Path, model: str, what: str = "evaluation metrics") -> dict[str, Any]:
    """The headline numbers of one model variant in an evaluation metrics file: test NLL, active units, collapse."""
    metrics = read_artifact(path, EvaluationMetrics, what, DataError, "run the pipeline up to `vaeops evaluate` first")
    entry = metrics.models.get(model)
    if entry is None:
        raise DataError(f"{path} has no test NLL for model {model!r}; re-run `vaeops evaluate`")
    return ModelVerdict.model_validate(entry.model_dump(include={"nll", "active_units", "collapsed"})).model_dump()


def verify_export(export_dir: Path) -> tuple[Manifest, dict[str, bytes]]:
    """The export manifest and the bytes of every file it lists, each checked against the sha256 it names."""
    return read_verified(export_dir)


def candidate_evidence(params: Params) -> dict[str, Any]:
    """What the gate knows about the new model: its export, its validation verdict, its metrics."""
    export_dir = Path(params.export.out_dir)
    manifest, _ = verify_export(export_dir)
    validation = read_json(Path(params.validate.report), "validation report")
    metrics_path = Path(params.export.metrics)
    numbers = model_metrics(metrics_path, manifest.variant)
    return {
        "model": manifest.variant,
        "model_version": manifest.model_version,
        "data_sha256": manifest.data_sha256,
        "validation_passed": validation.get("success") is True,
        "validated_data_sha256": validation.get("data_sha256"),
        "parity": manifest.parity.model_dump(),
        "checkpoint": manifest.checkpoint,
        "contract": Contract.of(manifest).model_dump(),
        **numbers,
    }


def champion_evidence(champion_dir: Path) -> dict[str, Any] | None:
    """The current champion's version and test NLL, or None when no champion has been promoted yet."""
    if not (champion_dir / MANIFEST).is_file():
        return None
    manifest, _ = read_installed(champion_dir)  # every file the champion holds, checked before it is trusted
    numbers = model_metrics(champion_dir / METRICS, manifest.variant, "champion metrics")
    kept = champion_dir / CHECKPOINT  # its sha256 was checked with the rest: only its own weights re-score it
    return {
        "model_version": manifest.model_version,
        "data_sha256": manifest.data_sha256,
        "nll": numbers["nll"],
        "contract": Contract.of(manifest).model_dump(),
        "checkpoint": str(kept) if kept.is_file() else None,
    }


def decide(
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    margin: float,
    pinned: str | None = None,
    paired: dict[str, Any] | None = None,
    accept_contract_change: bool = False,
) -> tuple[bool, list[str]]:
    """Pure gate: (promote?, one reason per check). Every check is evaluated, so a rejection lists all its causes."""
    checks: list[tuple[bool, str]] = []
    if pinned:
        checks.append((False, f"champion {pinned} is pinned (`vaeops champion unpin` lets the gate replace it)"))
    same_data = candidate["validated_data_sha256"] == candidate["data_sha256"]
    checks.append(
        (
            candidate["validation_passed"] and same_data,
            "validation passed on the data the model was trained on"
            if candidate["validation_passed"] and same_data
            else "validation did not pass"
            if not candidate["validation_passed"]
            else "the validation report is for other data than the model was trained on",
        )
    )
    parity = candidate["parity"]
    checks.append(
        (
            isinstance(parity, dict),
            f"ONNX parity passed on {parity['images']} images (atol {parity['atol']}, rtol {parity['rtol']})"
            if isinstance(parity, dict)
            else "the export manifest records no ONNX parity check",
        )
    )
    units = candidate["active_units"]
    checks.append(
        (
            not candidate["collapsed"],
            f"posterior collapsed ({units} active units)"
            if candidate["collapsed"]
            else f"posterior not collapsed ({units} active units)",
        )
    )
    nll = candidate["nll"]
    change = (
        contract_change(champion["contract"], candidate["contract"])
        if champion and "contract" in champion and "contract" in candidate
        else ""
    )
    if champion is None:
        checks.append((True, f"no champion yet: test NLL {nll:.3f} nats becomes the baseline"))
    elif change:
        # Another input contract: clients would have to change what they send, so no NLL can decide it.
        checks.append(
            (
                accept_contract_change,
                f"input contract changes ({change}): "
                + (
                    "accepted by an explicit --accept-contract-change"
                    if accept_contract_change
                    else "never promoted by the NLL rule; promote it with --accept-contract-change"
                ),
            )
        )
    elif paired is not None:
        checks.append(rescore.nll_check(paired, champion["model_version"], margin))
    else:
        gain = champion["nll"] - nll
        # A champion kept without its checkpoint cannot be re-scored: the stored NLLs decide, and the reason says so.
        other_data = "" if champion["data_sha256"] == candidate["data_sha256"] else " (champion measured on other data)"
        checks.append(
            (
                gain > margin,
                f"test NLL {nll:.3f} nats vs champion {champion['model_version']} {champion['nll']:.3f}{other_data}: "
                f"gain {gain:.3f} {'>' if gain > margin else '<='} margin {margin}",
            )
        )
    return all(ok for ok, _ in checks), [("pass: " if ok else "fail: ") + text for ok, text in checks]


def training_profile(params: Params) -> dict[str, Any] | None:
    """The profile of the data the challenger was trained on, for the next run's drift stage; None without it."""
    try:
        images, labels = load_split(params.data.out_dir, "train")
    except DataError:
        return None  # an export whose prepared data is gone: the champion then has nothing to compare drift with
    return profile(images, labels, params.validate.ink_threshold, params.drift.sample)


def install_champion(
    export_dir: Path,
    metrics_path: Path,
    champion_dir: Path,
    decision: dict[str, Any],
    data_profile: dict[str, Any] | None,
    record: InstallRecord,
    report_dir: Path,
) -> None:
    """Put the export (graphs + manifest), its metrics, its evaluation report, the decision and the install record
    into the champion folder in one atomic swap."""
    manifest, graphs = verify_export(export_dir)  # the bytes written are the bytes just checked
    with atomic_directory(champion_dir, marker=MANIFEST) as staging:
        for file_name, data in graphs.items():
            (staging / file_name).write_bytes(data)
        shutil.copyfile(export_dir / MANIFEST, staging / MANIFEST)
        shutil.copyfile(metrics_path, staging / METRICS)
        rescore.keep_checkpoint(manifest, staging)
        if (report_dir / REPORT).is_file():  # the report of the run that made it: the page shows the model's own
            shutil.copyfile(report_dir / REPORT, staging / REPORT)
            for figure in sorted((report_dir / "plots").glob("*.png")):
                shutil.copyfile(figure, staging / f"{PLOT_PREFIX}{figure.name}")
        if data_profile is not None:  # what the next run's drift stage compares the new data with
            write_json_atomic(staging / PROFILE, data_profile)
        write_json_atomic(staging / DECISION, decision)  # already checked and rounded by promote()
        write_artifact(staging / INSTALL_RECORD, record.listing(staging))
    read_installed(champion_dir)


@writer.locked  # one writer of the champion, its history and the decision at a time
def promote(params: Params) -> dict[str, Any]:
    """Stage function: judge the exported model, replace the champion only if it wins, record the decision as JSON."""
    cfg = params.promote
    champion_dir = Path(cfg.champion_dir)
    candidate = candidate_evidence(params)
    champion = champion_evidence(champion_dir)
    comparable = (
        champion
        and champion["checkpoint"]
        and Path(candidate["checkpoint"]).is_file()
        and not contract_change(champion["contract"], candidate["contract"])
    )
    paired = (
        rescore.paired_nll(Path(champion["checkpoint"]), Path(candidate["checkpoint"]), params) if comparable else None
    )
    promoted, reasons = decide(
        candidate, champion, cfg.nll_margin, history.pinned(Path(cfg.history_dir)), paired, cfg.accept_contract_change
    )
    checked = PromotionDecision.model_validate(
        {
            "promoted": promoted,
            "reasons": reasons,
            "challenger": candidate,
            "previous_champion": champion,
            "champion": candidate["model_version"] if promoted else (champion or {}).get("model_version"),
            "champion_dir": str(champion_dir),
            "same_data_comparison": paired,
            "nll_margin": cfg.nll_margin,
        }
    )
    decision = dump_artifact(checked)  # the numbers at the precision written, as the file and the champion hold them
    if promoted:
        served = read_manifest(champion_dir) if champion else None
        record = InstallRecord.make(
            "promotion", read_manifest(params.export.out_dir), served, cfg.accept_contract_change
        )
        install_champion(
            Path(params.export.out_dir),
            Path(params.export.metrics),
            champion_dir,
            decision,
            training_profile(params),
            record,
            Path(params.evaluate.out_dir),
        )
        history.archive(champion_dir, Path(cfg.history_dir), cfg.keep_champions, reasons)
    # DVC tracks the champion folder as an output, so it exists (empty) even before the first promotion.
    champion_dir.mkdir(parents=True, exist_ok=True)
    write_artifact(cfg.decision, checked)
    return decision


def summary(decision: dict[str, Any]) -> str:
    """A few lines for the terminal: the verdict, then one line per check."""
    verdict = "PROMOTED" if decision["promoted"] else "NOT PROMOTED"
    head = (
        f"{verdict}: {decision['challenger']['model_version']} (champion now: "
        f"{decision['champion'] or 'none'}, in {decision['champion_dir']}/)"
    )
    return "\n".join([head, *(f"  {reason}" for reason in decision["reasons"])])


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops promote`: run the gate and print the decision (exit 0 whether or not the model was promoted)."""
    params = load_params(args.params, args.overrides)
    print(summary(promote(params)))
    print(f"decision: {params.promote.decision}")
