"""What every command shares: the exit codes, the one usage error, and reading a document or
a pod from a file or stdin. The only place the CLI reads its inputs."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ..core import yamldoc
from ..core.admission import carried_pod


class ExitCode(enum.IntEnum):
    """The command line's contract (docs/operations.md, "Command line"): scripts rely on these."""

    OK = 0
    REJECTED = 1  # the input was understood, but a secret was rejected (or a check failed)
    USAGE = 2  # bad usage, unreadable input, or a broken config, rule or template


class UsageError(Exception):
    """A usage, input or environment problem: the CLI prints it and exits 2."""


def require(what: str, extra: str, *modules: str) -> None:
    """Refuse, with the install line, a command whose optional extra is not installed."""
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            raise UsageError(f"{what} needs {module}: pip install 'secretpatch[{extra}]'") from None


def read_document(name: str) -> Any:
    """A YAML or JSON document from a file, or from stdin for '-'."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {name}: not UTF-8 text") from None
    try:
        if text.lstrip().startswith(("{", "[")):
            return json.loads(text)
        return yamldoc.load_plain(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot parse {name}: {detail}") from None


def read_pod(name: str) -> dict[str, Any]:
    """A pod, or the pod an AdmissionReview carries, from a file or stdin."""
    document = read_document(name)
    pod = carried_pod(document)
    if pod is not document and not isinstance(pod, dict):
        raise UsageError(f"{name}: the AdmissionReview has no request.object")
    if not isinstance(pod, dict):
        raise UsageError(f"{name}: expected a pod (a mapping), got {type(document).__name__}")
    return pod
