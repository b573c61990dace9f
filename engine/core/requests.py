"""Secret requests: what a Flyte task pod asks for, read from its annotations.

Flyte writes each requested secret as an annotation `flyte.secrets/s<N>` (and reads any name
starting `flyte.secrets/s`) whose value is the protobuf text format of `flyteidl.core.Secret`,
base32-encoded with a lower-case alphabet and no padding. The text format is decoded by the
protobuf library against a descriptor built here, so no hand-written parser decides what a
hostile annotation means.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message

from .errors import InputError, Rejected, printable, quote_value
from .jsontypes import is_object

INJECT_LABEL = "inject-flyte-secrets"
ANNOTATION_PREFIX = "flyte.secrets/s"
# Flyte decodes every annotation whose name starts with flyte.secrets/s, whatever follows. What
# may follow is what Kubernetes allows in an annotation name (at most 63 characters after the
# '/', letters, digits, '-', '_' and '.'): the API server refuses any other pod after the
# webhooks, so nothing else needs decoding, and nothing else reaches a message.
_ANNOTATION_NAME = re.compile(r"flyte\.secrets/s([-A-Za-z0-9_.]{0,62})")

_FLYTE_ALPHABET = "abcdefghijklmnopqrstuvwxyz123456"
_RFC4648_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_RFC4648 = str.maketrans(_FLYTE_ALPHABET, _RFC4648_ALPHABET)
# The same 32 symbols as the digits of int(s, 32), which reads them in C (base64.b32decode
# loops in Python: 14 us for a request, against 2). Bytes, as bytes.translate maps them in C
# (str.translate looks each character up in a dict).
_ALPHABET_BYTES = _FLYTE_ALPHABET.encode("ascii")
_TO_DIGITS = bytes.maketrans(_ALPHABET_BYTES, b"0123456789abcdefghijklmnopqrstuv")
# Lengths an unpadded base32 string can have: 8k plus 0, 2, 4, 5 or 7 characters.
_VALID_TAIL = frozenset({0, 2, 4, 5, 7})
# The longest value a string field may have. GCP's longest valid value is a group of 303
# characters (projects/<30-character project>/secrets/<255-character secret id>).
MAX_FIELD_LENGTH = 512
STRING_FIELDS = ("group", "group_version", "key", "env_var")
# The longest text a request can need: every string field at its longest, one per line as
# Go's MarshalTextString writes them, and the longest mount requirement (2,123 bytes).
MAX_TEXT_BYTES = sum(len(f'{name}: ""\n') + MAX_FIELD_LENGTH for name in STRING_FIELDS) + len(
    "mount_requirement: ENV_VAR\n"
)
# The same, base32-encoded (3,397 characters). Checked before anything is decoded.
MAX_ANNOTATION_LENGTH = -(-MAX_TEXT_BYTES * 8 // 5)
# What no request's text holds: a control character other than tab and line breaks, a
# character outside ASCII (every valid field is printable ASCII), or a run of more than four
# backslashes (two escaped backslashes). protobuf's text parser unescapes strings with a
# regular expression whose cost grows with the square of a backslash run, so the runs are
# refused before the parser sees them.
_NO_REQUEST_HAS = re.compile(r"[^\t\n\r\x20-\x7e]|\\{5,}")

MOUNT_TYPES = ("ANY", "ENV_VAR", "FILE")


def _secret_class() -> type[Message]:
    """`flyteidl.core.Secret`, as flyteidl/core/security.proto declares it."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="flyteidl/core/security.proto", package="flyteidl.core", syntax="proto3"
    )
    message = proto.message_type.add(name="Secret")
    enum = message.enum_type.add(name="MountType")
    for number, name in enumerate(MOUNT_TYPES):
        enum.value.add(name=name, number=number)
    for number, name in enumerate(("group", "group_version", "key"), start=1):
        message.field.add(name=name, number=number, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    message.field.add(
        name="mount_requirement",
        number=4,
        type=field.TYPE_ENUM,
        type_name=".flyteidl.core.Secret.MountType",
        label=field.LABEL_OPTIONAL,
    )
    message.field.add(name="env_var", number=5, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("flyteidl.core.Secret"))


SecretMessage = _secret_class()


@dataclass(frozen=True)
class SecretRequest:
    """One requested secret, decoded but not yet validated."""

    annotation: str
    group: str = ""
    group_version: str = ""
    key: str = ""
    mount_requirement: str = "ANY"
    env_var: str = ""

    def label(self) -> str:
        """`group/group_version`, for audit annotations, log lines and provenance: escaped
        and shortened, since a field no template reads is not validated."""
        return printable(f"{self.group}/{self.group_version}", limit=160)

    def describe(self) -> str:
        """The request as Flyte's `%v` prints it, with every value escaped and shortened."""
        parts = [
            f"{name}:{quote_value(value)}"
            for name, value in (
                ("group", self.group),
                ("group_version", self.group_version),
                ("key", self.key),
            )
            if value
        ]
        if self.mount_requirement != "ANY":
            parts.append(f"mount_requirement:{self.mount_requirement}")
        if self.env_var:
            parts.append(f"env_var:{quote_value(self.env_var)}")
        return " ".join(parts)


def decode_base32(value: str) -> bytes:
    """Decode Flyte's base32 (alphabet a-z1-6, no padding); ValueError names the problem.
    Line breaks are skipped, as Go's base32 decoder skips them."""
    if "\n" in value or "\r" in value:
        value = value.replace("\r", "").replace("\n", "")
    raw = value.encode("ascii", "replace")  # anything else becomes "?", outside the alphabet
    if raw.translate(None, _ALPHABET_BYTES):  # what is left once the alphabet is deleted
        bad = next(c for c in value if c not in _FLYTE_ALPHABET)
        raise ValueError(f"not Flyte base32: character {quote_value(bad)} is outside a-z and 1-6")
    if len(value) % 8 not in _VALID_TAIL:
        raise ValueError(f"not Flyte base32: a length of {len(value)} characters is impossible")
    if not value:
        return b""
    # Each symbol is 5 bits; the bits past the last whole byte are not data (RFC 4648).
    bits = 5 * len(value)
    number = int(raw.translate(_TO_DIGITS), 32)
    return (number >> (bits % 8)).to_bytes(bits // 8, "big")


def decode_annotation(name: str, value: str) -> SecretRequest:
    """One annotation to one request, as Flyte decodes it; Rejected names what is wrong.

    The cost is linear in the value, which is at most MAX_ANNOTATION_LENGTH characters."""
    _check_length(name, value)
    try:
        text = decode_base32(value).decode("utf-8")
    except UnicodeDecodeError:
        raise _unreadable(name, "the decoded request is not UTF-8 text") from None
    except ValueError as exc:
        raise _unreadable(name, str(exc)) from None
    # A text as Go's marshaller writes it holds nothing _NO_REQUEST_HAS finds (printable
    # ASCII strings without a backslash, and line breaks), so it is read first.
    marshalled = read_marshalled(text)
    if marshalled is not None:
        group, group_version, key, mount_requirement, env_var = marshalled
        return SecretRequest(name, group, group_version, key, mount_requirement, env_var)
    hostile = _NO_REQUEST_HAS.search(text)
    if hostile is not None:
        found = hostile.group()
        what = "a run of backslashes" if found.startswith("\\") else f"the character {quote_value(found)}"
        raise _unreadable(
            name, f"the decoded request holds {what} at offset {hostile.start()}, which no request has"
        )
    try:
        message = _parse_text(text)
    except text_format.ParseError as exc:
        raise _unreadable(name, printable(str(exc))) from None
    except ValueError as exc:  # protobuf refuses this way an enum number outside int32
        raise _unreadable(name, printable(str(exc))) from None
    mount = message.mount_requirement  # type: ignore[attr-defined]
    return SecretRequest(
        annotation=name,
        group=message.group,  # type: ignore[attr-defined]
        group_version=message.group_version,  # type: ignore[attr-defined]
        key=message.key,  # type: ignore[attr-defined]
        mount_requirement=MOUNT_TYPES[mount] if 0 <= mount < len(MOUNT_TYPES) else str(mount),
        env_var=message.env_var,  # type: ignore[attr-defined]
    )


# What Go's proto.MarshalTextString writes for a request, which is what every Flyte annotation
# holds: each field that is set, in field order, on a line of its own, a string without
# escapes (a request that needs one is rarer than rare). Such a text means exactly what the
# protobuf package's parser reads from it (tests/test_secrets.py checks that on generated
# texts, and that every near miss goes to the parser), and one regular expression reads it in
# a microsecond where the parser, pure Python, takes 25 to 40. Anything else goes to the parser.
_PLAIN_STRING = r'"([ !#-\[\]-~]*)"'
_MARSHALLED = re.compile(
    rf"(?:group: {_PLAIN_STRING}\n)?(?:group_version: {_PLAIN_STRING}\n)?(?:key: {_PLAIN_STRING}\n)?"
    rf"(?:mount_requirement: (ENV_VAR|FILE)\n)?(?:env_var: {_PLAIN_STRING}\n)?"
)


def read_marshalled(text: str) -> tuple[str, str, str, str, str] | None:
    """(group, group_version, key, mount_requirement, env_var) of a text exactly as Go's
    marshaller writes it; None for any other text, which the protobuf parser reads."""
    found = _MARSHALLED.fullmatch(text)
    if found is None:
        return None
    group, group_version, key, mount_requirement, env_var = found.groups()
    return (group or "", group_version or "", key or "", mount_requirement or "ANY", env_var or "")


# Go's strconv.ParseInt(s, 0, 32), which Flyte's text parser uses for an enum given as a
# number, reads a leading 0 as octal (`02`, `010` is 8, `0_2`); Python's int(s, 0), which the
# protobuf package uses, refuses those. Every other form (`2`, `0x2`, `0o2`, `0b10`) both read alike.
_GO_OCTAL = re.compile(r"([+-]?)0((?:_?[0-7])+)")


def _parse_text(text: str) -> Message:
    """The protobuf package's text parser, with an enum number in Go's octal form read as Go
    reads it: the parser says where the token it could not read is, and only that token is
    rewritten, so nothing inside a quoted string can be."""
    message = SecretMessage()
    try:
        text_format.Parse(text, message)
        return message
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        if line is None or column is None or "has no value named" not in str(exc):
            raise
        lines = text.split("\n")
        start = sum(len(each) + 1 for each in lines[: line - 1]) + column - 1
        token = _GO_OCTAL.match(text, start)
        end = token.end() if token is not None else start
        if token is None or (end < len(text) and (text[end].isalnum() or text[end] in "_.")):
            raise
        number = int(token.group(2).replace("_", ""), 8)
        decimal = f"{'-' if token.group(1) == '-' else ''}{number}"
        message = SecretMessage()
        text_format.Parse(text[:start] + decimal + text[end:], message)
        return message


def _check_length(name: str, value: str) -> None:
    if len(value) > MAX_ANNOTATION_LENGTH:
        raise _unreadable(
            name,
            f"the value is {len(value)} characters long; a secret request is at most "
            f"{MAX_ANNOTATION_LENGTH} (every field at its longest)",
        )


def _unreadable(name: str, reason: str) -> Rejected:
    return Rejected(
        f"{name}: cannot read the secret request: {reason}", annotation=name, code="bad-annotation"
    )


def encode_request(text: str) -> str:
    """The annotation value Flyte would write for a text-format request (for tests and docs)."""
    encoded = base64.b32encode(text.encode("utf-8")).decode("ascii").rstrip("=")
    return encoded.translate(str.maketrans(_RFC4648_ALPHABET, _FLYTE_ALPHABET))


def requested_secrets(pod: Mapping[str, Any], limit: int | None = None) -> list[SecretRequest]:
    """The pod's secret requests in the order of N (s2 before s10).

    A pod without the injection label, or without annotations, asks for nothing. More than
    `limit` requests are refused before any is decoded.
    """
    return decode_requests(secret_annotations(pod), limit)


def secret_annotations(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The pod's `flyte.secrets/...` annotations as they come, names not yet checked; none
    without the injection label."""
    metadata = pod.get("metadata")
    if metadata is None:
        return []
    if not is_object(metadata):
        raise InputError("metadata is not an object")
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    if not is_object(labels):
        raise InputError("metadata.labels is not an object")
    if not is_object(annotations):
        raise InputError("metadata.annotations is not an object")
    if labels.get(INJECT_LABEL) != "true":
        return []
    found = []
    for name, value in annotations.items():
        if not isinstance(name, str) or not name.startswith(ANNOTATION_PREFIX):
            continue
        if not isinstance(value, str):
            raise InputError(f"annotation {quote_value(name)} is not a string")
        found.append((name, value))
    return found


def order_annotations(
    annotations: list[tuple[str, str]], limit: int | None = None, max_chars: int | None = None
) -> list[tuple[str, str]]:
    """`secret_annotations` checked for what costs nothing to check, in the order of N.

    Refused before any is decoded: more than `limit` annotations, more than `max_chars`
    characters of values in all, a name Kubernetes would refuse, a value longer than any
    request can be. So the decoding that follows costs at most a known amount."""
    if limit is not None and len(annotations) > limit:
        raise Rejected(
            f"the pod asks for {len(annotations)} secrets; secretpatch.limits.maxSecrets is {limit}",
            annotation="",
            code="limit",
        )
    if max_chars is not None:
        total = sum(len(value) for _, value in annotations)
        if total > max_chars:
            raise Rejected(
                f"the pod's secret annotations hold {total} characters; "
                f"secretpatch.limits.maxAnnotationChars is {max_chars}",
                annotation="",
                code="limit",
            )
    ordered: list[tuple[tuple[int, int, str], str, str]] = []
    for name, value in annotations:
        match = _ANNOTATION_NAME.fullmatch(name)
        if match is None:
            raise Rejected(
                f"annotation {quote_value(name)} is not an annotation name Kubernetes accepts "
                "(after flyte.secrets/s: letters, digits, '-', '_' and '.', 63 characters in all "
                "after the '/'), so the API server would refuse the pod",
                annotation="",
                code="bad-annotation",
            )
        _check_length(name, value)
        suffix = match.group(1)
        # Numbered names first, by their number (s2 before s10), then any others by name.
        ordered.append(((0, int(suffix), "") if suffix.isdigit() else (1, 0, suffix), name, value))
    ordered.sort()
    return [(name, value) for _, name, value in ordered]


def decode_requests(annotations: list[tuple[str, str]], limit: int | None = None) -> list[SecretRequest]:
    """`secret_annotations` decoded, in the order of N; a malformed name is refused."""
    return [decode_annotation(name, value) for name, value in order_annotations(annotations, limit)]
