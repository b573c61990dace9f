"""The error family: each class means one thing, and keeps its place as fields.

- `LocatedError`: the base of the two errors in an operator's files, with file, line and the
  offending line's text:
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
from typing import Any, Literal


class SecretpatchError(Exception):
    """Base of every error secretpatch raises on purpose."""


class LocatedError(SecretpatchError):
    """A mistake in a file an operator wrote (the config, a rule, a template): the file, the
    1-based line, and that line's text when known, so that the operator sees where to look.

    `str()` is one line, `file:line: message`, because it may end up in a denial message
    or a log line; `excerpt()` adds the offending line beneath, for a terminal."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, source: str | None = None
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.file:
            return self.message
        if not self.line:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"

    def excerpt(self) -> str:
        if self.source is None or self.line is None or not self.source.strip():
            return str(self)
        return f"{self}\n  {self.line} | {printable(self.source.rstrip(), limit=160)}"


class LoadError(LocatedError):
    """Configuration, a rule or a template is broken; raised at start-up only."""


class InputError(SecretpatchError):
    """The pod or review is malformed; callers answer 400 / exit 2."""


class DeadlineExceeded(SecretpatchError):
    """A review ran past its deadline (the API server's timeout) and was stopped; a server
    answers 503, and the API server applies the webhook's failurePolicy."""


class RenderError(LocatedError):
    """A template failed on a real request although it loaded; the pod is denied."""


# Why a secret request was refused: a short, fixed category for metrics.
RefusalCode = Literal[
    "bad-annotation",  # an annotation that does not decode to a request
    "required-field",  # a field the rule requires is empty
    "mount-requirement",  # a mount requirement the rule does not accept
    "invalid-field",  # a field outside the rule's grammar
    "name-collision",  # an added item's name is taken
    "mount-conflict",  # the secrets path is another volume's mount
    "limit",  # over one of secretpatch.limits
]


class Rejected(SecretpatchError):
    """A secret request that no enabled rule accepts.

    `reason` names the annotation, the field and the rule that failed; `secret` is the request
    as Flyte prints it (escaped and shortened); `managers` are the secret managers Flyte would
    have tried, as it prints them. `message` starts with Flyte 2.0's own text, verbatim, so
    that the alerts and log searches written for Flyte's webhook still match; the precise
    reason follows.
    """

    def __init__(
        self,
        reason: str,
        *,
        annotation: str,
        secret: str = "",
        code: RefusalCode = "invalid-field",
        managers: tuple[str, ...] = (),
    ) -> None:
        self.reason = reason
        self.annotation = annotation
        self.secret = secret
        self.code = code
        self.managers = managers
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.annotation:  # the pod as a whole, not one of its secrets (a limit)
            return f"secretpatch refused the pod: {self.reason}"
        if self.code == "bad-annotation":
            # Flyte 2.0's UnmarshalStringMapToSecrets; its Go error's place holds ours.
            detail = self.reason.removeprefix(f"{self.annotation}: ")
            return (
                "failed to unmarshal secrets from pod annotations: error unmarshaling secret "
                f"[{self.annotation}]. Error: {detail}"
            )
        # Flyte 2.0's secrets mutator, which logs the injector's reason and drops it.
        return (
            f"none of the secret managers injected secret [{self.secret}]: failed to inject secret "
            f"[{self.secret}] using any of the enabled secret managers: [{' '.join(self.managers)}]. "
            "Possible reasons: the secret cannot be found or an internal error occurred; "
            f"reason: {self.reason}"
        )


def quote_value(value: str, limit: int = 64) -> str:
    """A hostile value made safe to print: JSON-escaped, ASCII only, shortened."""
    if len(value) <= limit:
        return json.dumps(value, ensure_ascii=True)
    return f"{json.dumps(value[:limit], ensure_ascii=True)}... ({len(value)} characters)"


def quote_json(value: Any, limit: int = 64) -> str:
    """Any JSON value from a request made safe to print: its JSON, ASCII only, shortened."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):  # not JSON, or nested past the limit
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
