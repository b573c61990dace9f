"""What a hostile pod can send, refused cheaply and within budget (the engine's side of the
hostile-load work; the server's side is in test_hostile_load.py)."""

from __future__ import annotations

import base64
import json
import tracemalloc
from typing import Any

import pytest
from google.protobuf import text_format
from secretpatch import Engine, InputError, Rejected
from secretpatch.core import runtime as engine_module
from secretpatch.core.errors import DeadlineExceeded, printable

from .conftest import admission_review, annotation, flyte_b32, flyte_pod


def _pod_with(value: str, name: str = "flyte.secrets/s0") -> dict[str, Any]:
    pod = flyte_pod()
    pod["metadata"]["annotations"][name] = value
    return pod


def test_a_run_of_backslashes_is_refused_before_the_text_parser(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parser's unescaping is quadratic in a backslash run: 64 KiB of them cost 4 s.
    calls = []
    monkeypatch.setattr(text_format, "Parse", lambda *a, **k: calls.append(a))
    text = "group: '" + "\\" * 2000 + "'"
    with pytest.raises(Rejected) as caught:
        engine.mutate(_pod_with(flyte_b32(text)))
    assert calls == []
    assert caught.value.reason == (
        "flyte.secrets/s0: cannot read the secret request: the decoded request holds "
        "a run of backslashes at offset 8, which no request has"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('group: "a\x1b[31m"', '"\\u001b"'),
        ('group: "a"\x00', '"\\u0000"'),
        ('group: "\u202eabc"', '"\\u202e"'),
        ('group: "caf\u00e9"', '"\\u00e9"'),
    ],
)
def test_text_with_characters_no_request_has_is_refused_with_them_escaped(
    engine: Engine, text: str, shown: str
) -> None:
    with pytest.raises(Rejected) as caught:
        engine.mutate(_pod_with(flyte_b32(text)))
    assert f"holds the character {shown} at offset" in caught.value.reason
    assert caught.value.message.isprintable() and caught.value.message.isascii()


def test_a_parse_error_quoting_hostile_text_reaches_the_message_escaped(engine: Engine) -> None:
    # Tabs and line breaks may stand in a request's text, and protobuf's ParseError quotes them.
    text = 'group: "a"\r\n\tbogus_field\r: "x"'
    with pytest.raises(Rejected) as caught:
        engine.mutate(_pod_with(flyte_b32(text)))
    message = caught.value.message
    assert "cannot read the secret request" in message and "bogus_field" in message
    assert message.isprintable() and message.isascii()


def test_printable_escapes_every_character_outside_printable_ascii_and_shortens() -> None:
    assert printable("a\x1b[2Jb\r\n\u202ec") == "a\\x1b[2Jb\\r\\n\\u202ec"
    assert printable("x" * 1000, limit=10) == "xxxxxxxxxx... (1000 characters)"


def test_the_first_bad_request_stops_the_decoding(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = []
    real = engine_module.decode_annotation

    def counting(name: str, value: str) -> Any:
        decoded.append(name)
        return real(name, value)

    monkeypatch.setattr(engine_module, "decode_annotation", counting)
    hostile = Engine.from_config(None)
    requests = [{"group": f"g{n}", "group_version": "1"} for n in range(300)]
    requests[1] = {"group": "bad group", "group_version": "1"}
    with pytest.raises(Rejected, match="flyte.secrets/s1: group"):
        hostile.mutate(flyte_pod(*requests))
    assert decoded == ["flyte.secrets/s0", "flyte.secrets/s1"]


def test_a_review_past_its_deadline_stops_between_secrets(engine: Engine) -> None:
    pod = flyte_pod(*[{"group": f"g{n}", "group_version": "1"} for n in range(50)])
    with pytest.raises(DeadlineExceeded):
        engine.review_outcome(admission_review(pod), deadline=0.0)
    assert engine.review_outcome(admission_review(pod), deadline=None).result == "patched"


@pytest.mark.parametrize("operation", [None, "", "create", "PATCH", 7, "C" * 5000])
def test_an_operation_that_is_not_one_of_the_four_is_malformed(engine: Engine, operation: Any) -> None:
    review = admission_review(flyte_pod({"group": "a", "group_version": "1"}))
    review["request"]["operation"] = operation
    with pytest.raises(
        InputError, match="request.operation is .*; expected one of: CREATE, UPDATE"
    ) as caught:
        engine.review(review)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("uid", ["u" * 129, "a\nb", "\u202e1234"])
def test_a_uid_that_is_not_a_uid_is_malformed(engine: Engine, uid: str) -> None:
    review = admission_review(flyte_pod())
    review["request"]["uid"] = uid
    with pytest.raises(InputError, match="is not a UID"):
        engine.review(review)


def test_envelope_messages_quote_hostile_values_short_and_escaped(engine: Engine) -> None:
    review = admission_review(flyte_pod())
    review["apiVersion"] = "\x1b[2J" + "v" * 100_000
    with pytest.raises(InputError) as caught:
        engine.review(review)
    assert len(str(caught.value)) < 300 and str(caught.value).isprintable()


def _retained(work: Any) -> int:
    """Bytes still allocated after `work` ran (what the engine kept)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_what_the_engine_keeps_stays_within_its_budgets_whatever_pods_send() -> None:
    # Denied reviews with long annotations (the decode cache), and valid pods with long env
    # lists in many containers (the memo's facts): before budgets counted keys and facts,
    # 130 of the first took a server to 335 MiB and 150 of the second to 406 MiB.
    limits = {"memoBytes": 2 << 20, "decodeCacheBytes": 1 << 20, "renderCacheBytes": 1 << 20}
    engine = Engine.from_config({"secretpatch": {"limits": limits}})
    env = [{"name": f"E{i}", "value": "v"} for i in range(2000)]
    env.append({"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/x"})
    containers = [{"name": f"c{i}", "image": "x", "env": env} for i in range(20)]

    def work() -> None:
        for n in range(150):
            denied = flyte_pod()
            for i in range(19):
                denied["metadata"]["annotations"][f"flyte.secrets/s{i}"] = annotation(
                    group=f"g{n}-{i}", group_version="1", key="k" * 512
                )
            denied["metadata"]["annotations"]["flyte.secrets/s19"] = annotation(group="bad group")
            assert engine.review(admission_review(denied))["response"]["allowed"] is False
            pod = flyte_pod({"group": f"g{n}", "group_version": "1"}, containers=containers)
            assert engine.review(admission_review(pod))["response"]["allowed"] is True

    retained = _retained(work)
    stats = {s.name: s for s in engine.cache_stats()}
    assert all(s.bytes <= s.budget for s in stats.values())
    assert stats["memo"].evictions > 0 or stats["memo"].bytes > 0
    budgets = sum(s.budget for s in stats.values())
    assert retained < budgets + (2 << 20), f"kept {retained} bytes; the budgets are {budgets}"


def test_a_log_line_is_written_whatever_values_it_holds(caplog: pytest.LogCaptureFixture) -> None:
    import io

    from secretpatch.webhook.bodies import log_name
    from secretpatch.webhook.telemetry import ReviewLog, dumps_line

    # orjson refuses integers past 64 bits and lone surrogates; the line must not be lost.
    line = dumps_line({"msg": "review", "pod": 2**70, "namespace": "\ud800", "ok": True})
    assert json.loads(line) == {
        "msg": "review",
        "pod": "1180591620717411303424",
        "namespace": "'\\ud800'",
        "ok": True,
    }
    caplog.set_level("INFO", logger="secretpatch.server")
    stream = io.StringIO()
    ReviewLog(stream)({"pod": log_name("\x1b[2J" + "p" * 100_000), "namespace": log_name(7)})
    written = stream.getvalue()
    assert written.endswith("\n") and len(written) < 400 and "\x1b" not in written
    assert json.loads(written)["namespace"] == "<int>"


@pytest.mark.parametrize("unit", [b"[" * 1000 + b"]" * 1000, b'{"a":' * 900 + b"1" + b"}" * 900])
def test_a_body_of_nested_brackets_is_refused_before_parsing(unit: bytes) -> None:
    # Few commas, but every bracket opens an object or array: 3 MiB parsed to 150 MiB.
    from secretpatch.webhook.bodies import BodyReader, Malformed

    body = b"[" + b",".join([unit] * (3_000_000 // len(unit))) + b"]"
    with pytest.raises(Malformed, match="JSON items or more; secretpatch.limits.maxJsonItems is 262144"):
        BodyReader(Engine.from_config(None)).check(body)


def _nested(depth: int) -> dict[str, Any]:
    """{"x": {"x": ...}} `depth` levels deep, built without recursion."""
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def _review(pod: dict[str, Any]) -> dict[str, Any]:
    """The AdmissionReview, built by hand: a helper that copies the pod would recurse."""
    request = {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {**request, "object": pod},
    }


def test_a_field_nested_past_the_recursion_limit_is_answered_not_a_crash() -> None:
    """The server's body parser takes 1,024 levels, Python's recursion limit is 1,000: a pod
    field 990 levels deep that secretpatch reads as JSON (a conflicting mount's name, a
    fetcher compared on a second review) gets an answer, never a RecursionError."""
    engine = Engine.from_config(None)
    conflict = flyte_pod({"group": "a", "group_version": "1"})
    conflict["spec"]["containers"][0]["volumeMounts"] = [
        {"name": _nested(990), "mountPath": "/etc/flyte/secrets"}
    ]
    response = engine.review(_review(conflict))["response"]
    assert response["allowed"] is False and "already mounts <dict> there" in response["status"]["message"]

    once = engine.mutate(flyte_pod({"group": "a", "group_version": "1"})).pod
    once["spec"]["initContainers"][0]["image"] = _nested(990)  # not the fetcher as written
    response = engine.review(_review(once))["response"]
    appended = [
        op for op in json.loads(base64.b64decode(response["patch"])) if op["path"] == "/spec/initContainers/-"
    ]
    assert response["allowed"] is True and len(appended) == 1
