"""The nightly retraining deployment: serve flows/retrain.py on a cron schedule, or register it with a work pool.

Needs a real Prefect API (`prefect server start`, then PREFECT_API_URL): the temporary server that a plain
`python flows/retrain.py` starts has no scheduler. See docs/pipeline.md, "Scheduling".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Scheduled runs and `make run` share one task cache: the results under the checkout's .prefect/storage.
os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(Path(__file__).resolve().parents[1] / ".prefect" / "storage"))
from retrain import retrain  # noqa: E402  (flows/ is not a package: the entry script's folder)
from vaeops.core.errors import VaeopsError  # noqa: E402
from vaeops.core.params import add_assignments_option, load_params, parse_assignments  # noqa: E402

NAME = "nightly"
CRON = "0 3 * * *"  # 03:00 every day (UTC unless --timezone says otherwise)
REPO = Path(__file__).resolve().parents[1]
TAGS = ["vaeops", "retrain"]


def parameters(
    params_file: str = "params.yaml",
    overrides: dict | None = None,
    force_retrain: bool = False,
    accept_contract_change: bool = False,
) -> dict:
    """The flow parameters every scheduled run gets (the same names as the flow's arguments)."""
    return {
        "params_file": params_file,
        "overrides": overrides,
        "force_retrain": force_retrain,
        "accept_contract_change": accept_contract_change,
    }


def nightly_deployment(cron: str = CRON, timezone: str = "UTC", **flow_parameters) -> RunnerDeployment:
    """The deployment object: the retrain flow, its cron schedule and its parameters (served by this process)."""
    return retrain.to_deployment(
        name=NAME,
        schedule=Cron(cron, timezone=timezone),
        parameters=parameters(**flow_parameters),
        tags=TAGS,
        description="Nightly retraining: new data -> validated -> trained -> gated -> promoted -> recorded with DVC.",
        concurrency_limit=1,  # runs share one checkout (data/, models/, champion/, dvc.lock): one at a time
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the nightly deployment from this process, or (--work-pool) register it for a worker to run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cron", default=CRON, help="schedule (default: %(default)r)")
    parser.add_argument(
        "--timezone", default="UTC", help="IANA time zone of the schedule, e.g. Europe/Berlin (default: %(default)s)"
    )
    parser.add_argument("--params", default="params.yaml", help="params file each run reads")
    add_assignments_option(parser, "a params.yaml key every run sets (repeatable), e.g. -S data.source_dir=DIR")
    parser.add_argument("--force-retrain", action="store_true", help="every run retrains, even with nothing changed")
    parser.add_argument(
        "--accept-contract-change",
        action="store_true",
        help="every run may promote a model with another input contract (rarely what you want)",
    )
    parser.add_argument("--work-pool", help="register with this work pool instead of serving (a worker runs it)")
    args = parser.parse_args(argv)
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "PREFECT_API_URL is not set: start `prefect server start` and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (the temporary server has no scheduler)",
            file=sys.stderr,
        )
        return 2
    try:
        overrides = parse_assignments(args.assignments)
        load_params(args.params, overrides)
    except VaeopsError as exc:
        print(f"deploy: error: {exc}", file=sys.stderr)
        return exc.exit_code
    flow_parameters = parameters(args.params, overrides or None, args.force_retrain, args.accept_contract_change)
    if args.work_pool:
        # The worker pulls the code from this checkout; a Docker or Kubernetes pool would use an image instead.
        retrain.from_source(source=str(REPO), entrypoint="flows/retrain.py:retrain").deploy(
            name=NAME,
            work_pool_name=args.work_pool,
            schedule=Cron(args.cron, timezone=args.timezone),
            parameters=flow_parameters,
            tags=TAGS,
            concurrency_limit=1,
        )
        return 0
    serve(nightly_deployment(args.cron, args.timezone, **flow_parameters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
