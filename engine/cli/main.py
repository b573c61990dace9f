"""The command line: argv parsed into one of the commands (render and review here, the
others in deploy.py, install.py and operator.py), and every error turned into its exit code and one
message on stderr (io.ExitCode: 0 done; 1 a secret was rejected; 2 bad usage, unreadable
input, or a broken config, rule or template).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

import yaml

from .. import __version__
from ..core.errors import InputError, LoadError, Rejected, RenderError
from ..core.mutation import Mutation
from ..core.runtime import Engine
from . import deploy, install, operator
from .io import ExitCode, UsageError, read_document, read_pod


def _engine(args: argparse.Namespace) -> Engine:
    return Engine.from_config(args.config)


def _print_mutation(mutation: Mutation, output: str) -> None:
    if output == "patch":
        print(json.dumps(mutation.patch, indent=2))
    elif output == "pod":
        print(yaml.safe_dump(mutation.pod, sort_keys=False, default_flow_style=False), end="")
    else:
        for injected in mutation.injected:
            for text in injected.texts.values():
                print(text)


def explain(mutation: Mutation) -> str:
    """One line per operation: what it does, and the rule, template and secret behind it."""
    rows = [
        (op["op"], op["path"], source.rule, source.template, f"{source.annotation} ({source.secret})")
        for op, source in zip(mutation.patch, mutation.sources, strict=True)
    ]
    header = ("op", "path", "rule", "template", "secret")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )
    return "\n".join(lines)


def cmd_render(args: argparse.Namespace) -> int:
    engine = _engine(args)
    pod = read_pod(args.pod)
    try:
        mutation = engine.mutate(pod)
    except Rejected as exc:
        if engine.config.on_refusal != "admit":
            raise
        _fail(
            ExitCode.REJECTED,
            f"rejected: {exc.message} (onRefusal is admit: the webhook lets this pod through "
            "unchanged, without its secrets, with a warning)",
        )
    if args.explain:
        print(explain(mutation) if mutation.patch else "no operations: the pod is left as it is")
    else:
        _print_mutation(mutation, args.output)
    return ExitCode.OK


def cmd_review(args: argparse.Namespace) -> int:
    engine = _engine(args)
    response = engine.review(read_document(args.review))
    print(json.dumps(response, indent=2))
    answer = response["response"]
    if not answer["allowed"]:
        print(f"secretpatch: denied: {answer.get('status', {}).get('message', '')}", file=sys.stderr)
        return ExitCode.REJECTED
    for warning in answer.get("warnings", []):
        print(f"secretpatch: warning: {warning}", file=sys.stderr)
    # Admitted with refused secrets (onRefusal: admit): allowed, but a secret was rejected.
    return ExitCode.REJECTED if answer.get("warnings") else ExitCode.OK


CONFIG_HELP = "Flyte's webhook config (a whole Flyte config or the section), YAML or JSON"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secretpatch",
        description="Inject GCP Secret Manager secrets into Flyte task pods, as Flyte's webhook does.",
    )
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    # Each command takes --config too, after its name; given there it wins, and left out it
    # must not reset the one given before the command (argparse would, with a default).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"secretpatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser(
        "render",
        parents=[common],
        help="print the JSONPatch (or patched pod) for a pod",
        description="Print what the webhook would do to POD (a pod or an AdmissionReview; '-' for stdin).",
    )
    render.add_argument("pod", metavar="POD")
    render.add_argument(
        "--output",
        "-o",
        choices=("patch", "pod", "commands"),
        default="patch",
        help="patch: the RFC 6902 JSONPatch (default); pod: the patched pod as YAML; "
        "commands: the shell line of each injected secret",
    )
    render.add_argument(
        "--explain",
        action="store_true",
        help="list each operation with the rule, template and secret behind it",
    )
    render.set_defaults(func=cmd_render)

    review = commands.add_parser(
        "review",
        parents=[common],
        help="answer an AdmissionReview as the webhook would",
        description="Print the AdmissionReview response for REVIEW ('-' for stdin).",
    )
    review.add_argument("review", metavar="REVIEW")
    review.set_defaults(func=cmd_review)
    deploy.add_commands(commands, common)
    install.add_commands(commands, common)
    operator.add_commands(commands, common)
    return parser


def _fail(code: ExitCode, message: str) -> NoReturn:
    print(f"secretpatch: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="secretpatch: warning: %(message)s", level=logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return int(code)
    except UsageError as exc:
        _fail(ExitCode.USAGE, str(exc))
    except LoadError as exc:
        _fail(ExitCode.USAGE, exc.excerpt())
    except InputError as exc:
        _fail(ExitCode.USAGE, f"invalid input: {exc}")
    except Rejected as exc:
        _fail(ExitCode.REJECTED, f"rejected: {exc.message}")
    except RenderError as exc:
        _fail(ExitCode.REJECTED, f"a template failed, so the pod would be denied: {exc.excerpt()}")
    except BrokenPipeError:  # pragma: no cover - `secretpatch render ... | head`
        return ExitCode.OK
