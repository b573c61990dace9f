"""Reading secret requests from annotations: bad ones are refused with name and reason."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from hypothesis import given, settings
from hypothesis import strategies as st
from secretpatch import Engine, InputError, Rejected
from secretpatch.core.requests import (
    MAX_ANNOTATION_LENGTH,
    MAX_FIELD_LENGTH,
    MAX_TEXT_BYTES,
    STRING_FIELDS,
    _parse_text,
    decode_annotation,
    decode_base32,
    encode_request,
    read_marshalled,
    requested_secrets,
)

from .conftest import annotation, flyte_b32, flyte_pod, proto_text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("M4ZG54LQ", 'character "M" is outside a-z and 1-6'),
        ("m4zg54l=", 'character "=" is outside a-z and 1-6'),
        ("abc", "a length of 3 characters is impossible"),
        ("a", "a length of 1 characters is impossible"),
        ("m4zg 54lq", 'character " " is outside'),
        # Digits and separators that int(s, 32) would read, and characters outside ASCII.
        ("m4zg054l", 'character "0" is outside'),
        ("m4zg754l", 'character "7" is outside'),
        ("m4zg_54l", 'character "_" is outside'),
        ("m4zg\u00e954l", "is outside a-z and 1-6"),
        ("m4zg54l\x00", "is outside a-z and 1-6"),
    ],
)
def test_bad_base32_is_explained(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_base32(value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('bogus: "x"\n', 'has no field named "bogus"'),
        ('group: "a"\ngroup: "b"\n', 'should not have multiple "group" fields'),
        ('group: "a\n', "String missing ending quote"),
        ("mount_requirement: SOMETIMES\n", "has no value named SOMETIMES"),
        ("group: 5\n", "Expected string"),
    ],
)
def test_bad_text_format_is_refused_with_the_annotation_named(engine: Engine, text: str, reason: str) -> None:
    pod = flyte_pod({"group": "fine", "group_version": "1"})
    pod["metadata"]["annotations"]["flyte.secrets/s7"] = flyte_b32(text)
    with pytest.raises(Rejected) as caught:
        engine.mutate(pod)
    assert caught.value.annotation == "flyte.secrets/s7"
    assert caught.value.message.startswith(
        "failed to unmarshal secrets from pod annotations: error unmarshaling secret "
        "[flyte.secrets/s7]. Error: cannot read the secret request: "
    ), "Flyte 2.0's text first, verbatim, then the reason where its Go error goes"
    assert reason in caught.value.message
    assert caught.value.reason.startswith("flyte.secrets/s7: cannot read the secret request: ")


def test_bytes_that_are_not_utf8_are_refused(engine: Engine) -> None:
    import base64

    raw = base64.b32encode(b'group: "\xff"\n').decode().rstrip("=")
    value = raw.translate(
        str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "abcdefghijklmnopqrstuvwxyz123456")
    )
    pod = flyte_pod()
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = value
    with pytest.raises(
        Rejected,
        match=r"secret \[flyte.secrets/s0\]. Error: cannot read the secret request: the decoded request is not UTF-8",
    ):
        engine.mutate(pod)


def test_any_name_flyte_decodes_is_injected_numbered_names_first_then_the_others_by_name(
    engine: Engine,
) -> None:
    """Flyte decodes every flyte.secrets/s... annotation, whatever follows the s."""
    pod = flyte_pod()
    annotations = pod["metadata"]["annotations"]
    annotations.clear()
    for name, group in (("sfoo", "c"), ("s10", "b"), ("s-bar", "d"), ("s2", "a"), ("s", "e")):
        annotations[f"flyte.secrets/{name}"] = annotation(group=group, group_version="1")
    injected = [i.secret.annotation for i in engine.mutate(pod).injected]
    assert injected == [f"flyte.secrets/{n}" for n in ("s2", "s10", "s", "s-bar", "sfoo")]


@pytest.mark.parametrize("suffix", ["s\x1b[2J", "s/x", "s" + "a" * 63, "s é"])
def test_a_name_kubernetes_would_refuse_is_refused_before_decoding_and_shown_escaped(
    engine: Engine, suffix: str
) -> None:
    pod = flyte_pod()
    pod["metadata"]["annotations"][f"flyte.secrets/{suffix}"] = annotation(group="a", group_version="1")
    with pytest.raises(Rejected, match="is not an annotation name Kubernetes accepts") as caught:
        engine.mutate(pod)
    assert caught.value.code == "bad-annotation"
    assert caught.value.message.isascii() and caught.value.message.isprintable()


def test_other_annotations_are_ignored() -> None:
    pod = flyte_pod({"group": "a", "group_version": "1"})
    pod["metadata"]["annotations"].update(
        {"flyte.secrets": "x", "example.com/secrets": "y", "flyte.secrets/": "z"}
    )
    assert [r.group for r in requested_secrets(pod)] == ["a"]


def test_an_oversized_annotation_is_refused_before_decoding(engine: Engine) -> None:
    pod = flyte_pod()
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = "!" * 3398
    with pytest.raises(
        Rejected,
        match=r"the value is 3398 characters long; a secret request is at most 3397 \(every field",
    ):
        engine.mutate(pod)


def test_the_annotation_cap_is_the_longest_request_the_field_grammars_allow() -> None:
    longest = "\n".join(f'{name}: "{"x" * MAX_FIELD_LENGTH}"' for name in STRING_FIELDS)
    text = f"{longest}\nmount_requirement: ENV_VAR\n"
    assert len(text) == MAX_TEXT_BYTES == 2123
    assert len(encode_request(text)) == MAX_ANNOTATION_LENGTH == 3397
    assert decode_annotation("flyte.secrets/s0", encode_request(text)).key == "x" * MAX_FIELD_LENGTH


def test_a_pods_secret_annotations_are_capped_in_all_before_decoding(engine: Engine) -> None:
    pod = flyte_pod()
    for n in range(20):
        pod["metadata"]["annotations"][f"flyte.secrets/s{n}"] = "!" * 3397
    with pytest.raises(Rejected) as caught:
        engine.mutate(pod)
    assert caught.value.message == (
        "secretpatch refused the pod: the pod's secret annotations hold 67940 characters; "
        "secretpatch.limits.maxAnnotationChars is 65536"
    )


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ("x", "metadata is not an object"),
        ({"labels": ["a"]}, "metadata.labels is not an object"),
        (
            {"labels": {"inject-flyte-secrets": "true"}, "annotations": "x"},
            "metadata.annotations is not an object",
        ),
        (
            {"labels": {"inject-flyte-secrets": "true"}, "annotations": {"flyte.secrets/s0": 5}},
            'annotation "flyte.secrets/s0" is not a string',
        ),
    ],
)
def test_malformed_metadata_is_an_input_error(engine: Engine, metadata: object, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        engine.mutate({"metadata": metadata, "spec": {"containers": []}})


def test_the_same_request_under_two_numbers_is_injected_twice(engine: Engine) -> None:
    pod = flyte_pod({"group": "a", "group_version": "1"}, {"group": "a", "group_version": "1"})
    names = [c["name"] for c in engine.mutate(pod).pod["spec"]["initContainers"]]
    assert names == ["gcp-pull-secret-0", "gcp-pull-secret-1"]


def test_line_breaks_inside_the_base32_are_skipped_as_go_skips_them(engine: Engine) -> None:
    value = annotation(group="a", group_version="1")
    pod = flyte_pod()
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = value[:7] + "\r\n" + value[7:20] + "\n" + value[20:]
    assert engine.mutate(pod).patch == engine.mutate(flyte_pod({"group": "a", "group_version": "1"})).patch


@pytest.mark.parametrize(
    ("written", "mount"),
    [
        ("2", "FILE"),
        ("02", "FILE"),  # Go: a leading 0 is octal
        ("0x2", "FILE"),
        ("0X2", "FILE"),
        ("0o2", "FILE"),
        ("0b10", "FILE"),
        ("0_2", "FILE"),  # Go allows an underscore after the octal 0
        ("00", "ANY"),
        ("\n  01", "ENV_VAR"),
        (
            "010",
            "8",
        ),  # octal 8: a number outside the enum, refused by the rule as Flyte's injector refuses it
        ("-01", "-1"),
    ],
)
def test_an_enum_number_is_read_as_gos_parser_reads_it(written: str, mount: str) -> None:
    text = f'group: "a"\ngroup_version: "1"\nmount_requirement: {written}\n'
    assert decode_annotation("flyte.secrets/s0", flyte_b32(text)).mount_requirement == mount


@pytest.mark.parametrize("written", ["09", "02x", "0_", "0__2", "2_", "x02"])
def test_an_enum_number_go_cannot_read_is_refused(written: str) -> None:
    text = f'group: "a"\ngroup_version: "1"\nmount_requirement: {written}\n'
    with pytest.raises(Rejected, match="has no value named"):
        decode_annotation("flyte.secrets/s0", flyte_b32(text))


def test_an_octal_look_alike_inside_a_string_is_left_alone() -> None:
    """Only the token the parser could not read is rewritten, never a quoted string."""
    text = 'group: "mount_requirement: 02"\ngroup_version: "02"\nmount_requirement: 02\n'
    request = decode_annotation("flyte.secrets/s0", flyte_b32(text))
    assert (request.group, request.group_version, request.mount_requirement) == (
        "mount_requirement: 02",
        "02",
        "FILE",
    )


# Texts near what Go's marshaller writes: the fast path must read each one it accepts exactly
# as the protobuf parser does, and leave every other to the parser.
_chars = st.sampled_from([*"aZ09-_./: \"\\#\t'", "\\n", '\\"', "\\101", "\\x41"])
_words = st.lists(_chars, max_size=6).map("".join)
_fields = st.sampled_from(["group", "group_version", "key", "env_var"])
_lines = st.one_of(
    st.builds(lambda f, w: f'{f}: "{w}"\n', _fields, _words),
    st.builds(
        lambda m: f"mount_requirement: {m}\n",
        st.sampled_from(["ANY", "ENV_VAR", "FILE", "1", "02", "0x2", "7"]),
    ),
    st.builds(lambda f, w: f'{f}:"{w}"\n', _fields, _words),
    st.builds(lambda f, w: f"{f}: '{w}'\n", _fields, _words),
    st.builds(lambda f, w: f'{f}: "{w}" "{w}"\n', _fields, _words),
    st.builds(lambda f, w: f'  {f} : "{w}"  # note\n', _fields, _words),
    st.sampled_from(["", "\n", "# comment\n", "unknown: 1\n"]),
)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(_lines, max_size=6).map("".join)
    | st.builds(
        lambda g, v, k, m, e: "".join(
            line
            for line in (
                f'group: "{g}"\n' if g else "",
                f'group_version: "{v}"\n' if v else "",
                f'key: "{k}"\n' if k else "",
                f"mount_requirement: {m}\n" if m != "ANY" else "",
                f'env_var: "{e}"\n' if e else "",
            )
        ),
        _words,
        _words,
        _words,
        st.sampled_from(["ANY", "ENV_VAR", "FILE"]),
        _words,
    )
)
def test_the_fast_path_reads_what_the_parser_reads_and_nothing_else(text: str) -> None:
    fast = read_marshalled(text)
    try:
        message = _parse_text(text)
    except (text_format.ParseError, ValueError):
        assert fast is None, "the fast path accepted a text the parser refuses"
        return
    if fast is None:
        return  # the parser reads it: the slow path stays right
    mount = message.mount_requirement
    assert fast == (
        message.group,
        message.group_version,
        message.key,
        ("ANY", "ENV_VAR", "FILE")[mount],
        message.env_var,
    )


def test_every_annotation_flyte_writes_takes_the_fast_path() -> None:
    """Go's marshaller's output for the requests of every scenario (the conftest encoder
    writes it as Go does) never reaches the parser."""
    for fields in (
        {"group": "TestSecret", "group_version": "2"},
        {
            "group": "projects/p-1/secrets/s",
            "group_version": "latest",
            "key": "k.1",
            "mount_requirement": "FILE",
        },
        {"key": "openai-key", "mount_requirement": "ENV_VAR", "env_var": "OPENAI_API_KEY"},
    ):
        assert read_marshalled(proto_text(**fields)) is not None


_FLYTE = "abcdefghijklmnopqrstuvwxyz123456"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_FLYTE, max_size=40), st.characters().filter(lambda c: c not in _FLYTE + "\r\n"))
def test_base32_with_any_other_character_is_refused(value: str, other: str) -> None:
    with pytest.raises(ValueError, match="is outside a-z and 1-6"):
        decode_base32(value[:3] + other + value[3:])


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_FLYTE, max_size=120).filter(lambda v: len(v) % 8 in (0, 2, 4, 5, 7)))
def test_base32_is_read_as_the_standard_decoder_reads_it(value: str) -> None:
    """decode_base32 reads the symbols with int(s, 32) in C; it gives what base64.b32decode
    gives on the same value, trailing bits and all."""
    import base64

    rfc = value.translate(str.maketrans(_FLYTE, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    assert decode_base32(value) == base64.b32decode(rfc + "=" * (-len(rfc) % 8))
