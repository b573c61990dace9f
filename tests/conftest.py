from __future__ import annotations

import asyncio
import base64
import copy
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from secretpatch import Engine
from secretpatch.core.memo import ReviewMemo

ROOT = Path(__file__).resolve().parent.parent

# Flyte's base32: RFC 4648 with a lower-case alphabet whose digits are 1-6, no padding.
_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_FLYTE = "abcdefghijklmnopqrstuvwxyz123456"


def flyte_b32(text: str) -> str:
    """How flytepropeller encodes a secret request (written here independently of the engine)."""
    raw = base64.b32encode(text.encode("utf-8")).decode("ascii").rstrip("=")
    return raw.translate(str.maketrans(_STD, _FLYTE))


def go_quote(value: str) -> str:
    """A string as Go's text marshaler quotes it: C escapes, other bytes in octal."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def proto_text(**fields: str) -> str:
    """Go's proto.MarshalTextString for a core.Secret: one `name: value` line per set field."""
    lines = []
    for name in ("group", "group_version", "key", "mount_requirement", "env_var"):
        value = fields.get(name)
        if not value:
            continue
        if name == "mount_requirement":
            lines.append(f"{name}: {value}")
        else:
            lines.append(f"{name}: {go_quote(value)}")
    return "".join(line + "\n" for line in lines)


def annotation(**fields: str) -> str:
    return flyte_b32(proto_text(**fields))


def flyte_pod(
    *requests: dict[str, str], containers: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    """A labelled task pod asking for `requests` as s0, s1, ..."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "task-pod",
            "namespace": "flytesnacks-development",
            "labels": {"inject-flyte-secrets": "true"},
            "annotations": {f"flyte.secrets/s{i}": annotation(**r) for i, r in enumerate(requests)},
        },
        "spec": {
            "containers": copy.deepcopy(containers)
            if containers is not None
            else [{"name": "main", "image": "task:1"}],
            **spec,
        },
    }


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the secretpatch command line in-process: exit code, stdout, stderr."""
    from secretpatch.cli.main import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def admission_review(
    pod: dict[str, Any] | None, uid: str = "u", api_version: str = "admission.k8s.io/v1", **request: Any
) -> dict[str, Any]:
    """An AdmissionReview as the API server sends it for a pod CREATE."""
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "object": pod,
            **request,
        },
    }


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.from_config(None)


def post_to_app(app: Any, body: bytes) -> tuple[int, bytes]:
    """POST `body` to the webhook path of an ASGI `app` in-process: the status and the body."""
    sent: list[dict[str, Any]] = []
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/mutate--v1-pod", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def remembering_at_first_sight(engine: Engine) -> Engine:
    """`engine`, with a memo that keeps every answer it composes, not only those whose
    secrets came before (test_memo.py::test_the_memo_keeps_an_answer_when_its_secrets_come_again
    checks that). The tests of what the memo answers use it, so that every pod after the
    first of a shape is answered from memory and checked. (No memo, no change: a rule that
    reads the pod turns it off.)"""
    if engine.memo is not None:
        engine._memo = ReviewMemo(max_bytes=engine.config.limits.memoBytes)
    return engine


def answers_from_threads(answer: Callable[[int, str], Any], expected: list[Any], rounds: int) -> list[int]:
    """Ask `answer(i, tag)` for every case from 8 threads at once, each in its own order,
    `rounds` times; the indices whose answer differed from `expected`. A crash in a thread
    is re-raised here."""
    wrong: list[int] = []
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        order = list(range(len(expected)))
        random.Random(seed).shuffle(order)
        try:
            for _ in range(rounds):
                for i in order:
                    if answer(i, f"{seed}-{i}") != expected[i]:
                        wrong.append(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return wrong
