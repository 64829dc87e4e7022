"""The `vaeops` command: a thin dispatcher over the stage registry (the same functions DVC and Prefect call)."""

from __future__ import annotations

import argparse
import importlib
import sys

from vaeops.core.errors import VaeopsError
from vaeops.core.params.loader import add_assignments_option, parse_assignments
from vaeops.stages import commands


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the chosen command's module is imported, so `vaeops --help` stays fast."""
    parser = argparse.ArgumentParser(prog="vaeops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in commands().items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        subparser.add_argument("--params", default="params.yaml", help="path to params.yaml (default: %(default)s)")
        add_assignments_option(subparser, "override one params.yaml key for this command (repeatable; YAML value)")
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
    args = build_parser(command if command in commands() else None).parse_args(argv)
    try:
        args.overrides = parse_assignments(args.assignments)
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
