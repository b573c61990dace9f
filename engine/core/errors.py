"""The error family: each class means one thing, and keeps its place as fields.

- `LoadError`: configuration, a rule or a template is broken. Raised at start-up only.
- `Rejected`: a secret request cannot be injected. The pod is denied.
- `InputError`: the input is not what it claims to be (not a pod, not an AdmissionReview).
- `DeadlineExceeded`: a review ran out of time and was stopped.
- `RenderError`: a template failed on a real request although it loaded. The pod is denied
  (fail closed); the operator should fix the template.
"""

from __future__ import annotations

import json
import re
from typing import Any


class SecretpatchError(Exception):
    """Base of every error secretpatch raises on purpose."""


class LoadError(SecretpatchError):
    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class InputError(SecretpatchError):
    """The pod or review is malformed; callers answer 400 / exit 2."""


class DeadlineExceeded(SecretpatchError):
    """A review ran past its deadline (the API server's timeout) and was stopped; a server
    answers 503, and the API server applies the webhook's failurePolicy."""


class RenderError(SecretpatchError):
    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        super().__init__(f"{where}{message}")


class Rejected(SecretpatchError):
    """A secret request that no enabled rule accepts.

    `reason` names the annotation, the field and the rule that failed; `secret` is the request
    as Flyte prints it (escaped and shortened), so the message reads like Flyte's own.
    """

    # `code` is a short, fixed category for metrics: bad-annotation, required-field,
    # mount-requirement, invalid-field, name-collision, limit.
    def __init__(
        self, reason: str, *, annotation: str, secret: str = "", code: str = "invalid-field"
    ) -> None:
        self.reason = reason
        self.annotation = annotation
        self.secret = secret
        self.code = code
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.annotation:  # the pod as a whole, not one of its secrets (a limit)
            return f"secretpatch refused the pod: {self.reason}"
        return f"none of the secret managers injected secret [{self.secret}]: {self.reason}"


def quote_value(value: str, limit: int = 64) -> str:
    """A hostile value made safe to print: JSON-escaped, ASCII only, shortened."""
    if len(value) <= limit:
        return json.dumps(value, ensure_ascii=True)
    return f"{json.dumps(value[:limit], ensure_ascii=True)}... ({len(value)} characters)"


def quote_json(value: Any, limit: int = 64) -> str:
    """Any JSON value from a request made safe to print: its JSON, ASCII only, shortened."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters of JSON)"


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: str, limit: int = 300) -> str:
    """A library's message that may quote hostile input (protobuf's ParseError quotes the
    offending line): every character outside printable ASCII escaped, and shortened, so
    that no terminal sequence, line break or right-to-left override reaches a log line, a
    Kubernetes event or Flyte's UI."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
