"""The `vaeops` command: a thin dispatcher over the stage modules (the same functions DVC and Prefect call)."""

from __future__ import annotations

import argparse
import importlib
import sys

from vaeops.core.errors import VaeopsError

# subcommand -> (module, one-line help). Each module defines add_arguments(parser) and run_cli(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("vaeops.data.prepare", "load the configured data set, split it, write data/prepared/"),
    "validate": ("vaeops.data.validate", "check every prepared split with Great Expectations; non-zero exit on failure"),
    "drift": ("vaeops.data.drift", "compare the new training data with the champion's; non-zero exit on far drift"),
    "train": ("vaeops.training.train", "train one model variant (vae: sampled z, plugin: z = mu) on the prepared data"),
    "evaluate": ("vaeops.evaluation.evaluate", "compare sampled and mean reconstructions, estimate the NLL, write the report"),
    "plots": ("vaeops.evaluation.dvc_plots", "write `dvc plots show` as an HTML page that renders with no network"),
    "export": ("vaeops.export.export", "export ONNX graphs and check them against PyTorch"),
    "serve": ("vaeops.serving.serve", "serve the exported ONNX model over HTTP (JSON API, Open Inference Protocol)"),
    "triton-repo": ("vaeops.serving.triton", "write the served model as an NVIDIA Triton model repository"),
    "promote": ("vaeops.lifecycle.promote", "promote a model to champion if it passes the gate"),
    "champion": ("vaeops.lifecycle.champions", "list past champions, roll back to one, pin or unpin the champion"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the chosen command's module is imported, so `vaeops --help` stays fast."""
    parser = argparse.ArgumentParser(prog="vaeops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        subparser.add_argument("--params", default="params.yaml", help="path to params.yaml (default: %(default)s)")
        subparser.set_defaults(module=module_name)
        if name == command:
            add_arguments = getattr(importlib.import_module(module_name), "add_arguments", None)
            if add_arguments is not None:
                add_arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a VaeopsError becomes a one-line message and a non-zero exit code."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        module = importlib.import_module(args.module)
        module.run_cli(args)
    except VaeopsError as exc:
        print(f"vaeops {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"vaeops {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
