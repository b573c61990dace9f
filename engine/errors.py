"""The error family: each class means one thing, and keeps its place as fields.

- `LoadError`: configuration, a rule or a template is broken. Raised at start-up only.
- `Rejected`: a secret request cannot be injected. The pod is denied.
- `InputError`: the input is not what it claims to be (not a pod, not an AdmissionReview).
- `RenderError`: a template failed on a real request although it loaded. The pod is denied
  (fail closed); the operator should fix the template.
"""

from __future__ import annotations

import json


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
