"""Defence in depth, tested with a deliberately lax rule: even if an operator's grammar let a
hostile value through, quoting, path checks and the fragment design keep it inert."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from secretpatch import Engine, RenderError
from secretpatch.core.requests import SecretRequest
from secretpatch.core.templating.jinja import make_environment

from .conftest import ROOT, flyte_pod

GCP_RULE = (ROOT / "rules" / "gcp.yaml").read_text()


@pytest.fixture
def lax(tmp_path: Path) -> Engine:
    """The GCP rule with a group grammar that accepts any printable ASCII."""
    rules = tmp_path / "rules"
    rules.mkdir()
    start = GCP_RULE.index("    group:\n      required:")
    end = GCP_RULE.index("      rule:", start)
    (rules / "gcp.yaml").write_text(
        GCP_RULE[:start] + '    group:\n      required: true\n      pattern: "[ -~]+"\n' + GCP_RULE[end:]
    )
    return Engine.from_config({"secretpatch": {"rules": str(rules)}})


@pytest.mark.parametrize(
    "group", ["a;reboot", "$(id)", "`id`", "a b", "x' || curl evil ||'", "a&&b", "{{ 7*7 }}"]
)
def test_shell_words_stay_single_words_whatever_the_grammar(lax: Engine, group: str) -> None:
    line = lax.mutate(flyte_pod({"group": group, "group_version": "1"})).pod["spec"]["initContainers"][0][
        "command"
    ][2]
    words = shlex.split(line)
    assert words[:5] == ["gcloud", "secrets", "versions", "access", f"{group}/versions/1"]
    assert f"--secret={group}" in words


def test_values_are_data_never_templates(lax: Engine) -> None:
    line = lax.mutate(flyte_pod({"group": "{{ 7*7 }}", "group_version": "1"})).pod["spec"]["initContainers"][
        0
    ]["command"][2]
    assert "'{{ 7*7 }}/versions/1'" in line
    assert "49" not in line


@pytest.mark.parametrize("group", ["..", "../../etc", "a/../../x"])
def test_a_path_out_of_the_secrets_folder_is_refused_by_the_template(lax: Engine, group: str) -> None:
    with pytest.raises(RenderError, match="is outside '/etc/flyte/secrets'"):
        lax.mutate(flyte_pod({"group": group, "group_version": "1"}))


def test_an_absolute_group_stays_inside_the_secrets_folder(lax: Engine) -> None:
    line = lax.mutate(flyte_pod({"group": "/etc/shadow", "group_version": "1"})).pod["spec"][
        "initContainers"
    ][0]["command"][2]
    assert "--out-file=/etc/flyte/secrets/etc/shadow/1 " in line
    assert "chmod +rX /etc/flyte/secrets/etc/shadow /etc/flyte/secrets/etc/shadow/1" in line


def test_values_cannot_add_yaml_keys_or_items(lax: Engine) -> None:
    group = 'x"\nimage: evil:latest\nsecurityContext: {privileged: true}\n- y'
    init = lax.mutate(flyte_pod({"group": group.replace("\n", " "), "group_version": "1"})).pod["spec"][
        "initContainers"
    ][0]
    assert init["image"] == "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"
    assert sorted(init) == ["command", "env", "image", "name", "resources", "volumeMounts"]


def test_the_bundled_grammar_refuses_before_any_template_runs(engine: Engine) -> None:
    from secretpatch import Rejected

    with pytest.raises(Rejected):
        engine.mutate(flyte_pod({"group": "a;reboot", "group_version": "1"}))


def test_every_test_the_threat_model_cites_exists() -> None:
    import re

    text = (ROOT / "docs" / "security.md").read_text()
    cited = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", text))
    assert len(cited) >= 25
    for file, name in sorted(cited):
        source = (ROOT / "tests" / file).read_text()
        assert f"def {name}(" in source, f"docs/security.md cites {file}::{name}, which does not exist"
    for file in set(re.findall(r"`(test_\w+\.py)`", text)):
        assert (ROOT / "tests" / file).is_file(), file


# --- The sandbox's fast lookups (templating/jinja.py: Sandbox) --------------------------------

_CONTEXT: dict[str, Any] = {
    "secret": SecretRequest(annotation="flyte.secrets/s0", group="projects/p/secrets/s", group_version="1"),
    "values": {"mountPath": "/etc/flyte/secrets", "items": "a key named like a method", "n": [1, 2]},
    "pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}},
    "parts": ["projects", "p", "secrets", "s"],
}


def _outcome(env: jinja2.Environment, expression: str, template: str = "{{ %s }}") -> tuple[str, str]:
    try:
        return "value", repr(env.from_string(template.replace("%s", expression)).render(_CONTEXT))
    except Exception as exc:  # each side must fail the same way
        return type(exc).__name__, str(exc)


# Where the expression sits changes how Jinja compiles a call: in a loop or a block it
# passes keywords of its own (_loop_vars, _block_vars) for the context to take off.
_PLACES = [
    "{{ %s }}",
    "{% for p in parts %}{{ %s }}|{% endfor %}",
    "{% for p in parts %}{{ p.upper() }}{{ %s }}{% endfor %}",
    "{% block b %}{{ %s }}{% endblock %}",
    "{% set x %}{{ %s }}{% endset %}{{ x }}",
    "{% macro m() %}{{ %s }}{% endmacro %}{{ m() }}",
    "{% with y = 1 %}{{ %s }}{% endwith %}",
]


@pytest.mark.parametrize(
    "expression",
    [
        "secret.group",
        "secret.group.split('/')",
        "secret.group.split('/')[3]",
        "secret.label()",
        "secret.__class__",
        "secret._private",
        "secret.nosuch",
        "values.mountPath",
        "values['mountPath']",
        "values.items",
        "values.items()",
        "values['items']",
        "values.update({'x': 1})",
        "values.pop('mountPath')",
        "values.n.append(3)",
        "values.n[1]",
        "values.n[5]",
        "values.nosuch",
        "values['nosuch']",
        "parts[2]",
        "parts[-1]",
        "parts['x']",
        "pod.spec.containers[0].name",
        "'{}'.format(secret)",
        "'{0.__class__}'.format(secret)",
        "'{x}'.format_map(values)",
        "secret.group.upper()",
        "secret.group.__class__.__mro__",
        "(1).__class__",
        "range(3) | list",
        "namespace(a=1).a",
        "dict(a=1).a",
        "cycler is defined and joiner is defined",
        "p.upper()",
        "secret.group.split('/') | join('-')",
        "'a,b'.split(',', 1)",
        "'a,b'.split(sep=',')",
        "(1, 2)[1]",
        "parts[True]",
        "[1, 2][-1]",
        "parts | map(attribute=1) | list",
    ],
)
@pytest.mark.parametrize("place", _PLACES)
def test_the_sandboxs_fast_lookups_answer_as_the_sandbox_does(expression: str, place: str) -> None:
    ours = make_environment([ROOT / "templates"])
    theirs = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    assert type(ours) is not ImmutableSandboxedEnvironment
    assert _outcome(ours, expression, place) == _outcome(theirs, expression, place)


@given(
    st.sampled_from([*dir(dict), *dir(str), *dir(list), "group", "key", "annotation", "_x", "mountPath"])
    | st.text(max_size=8),
    st.sampled_from(sorted(_CONTEXT)),
)
def test_any_attribute_or_key_is_looked_up_as_the_sandbox_does(name: str, of: str) -> None:
    ours = make_environment([ROOT / "templates"])
    theirs = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    obj = _CONTEXT[of]
    for lookup in ("getattr", "getitem"):
        mine, other = getattr(ours, lookup)(obj, name), getattr(theirs, lookup)(obj, name)
        if isinstance(other, jinja2.Undefined):
            assert isinstance(mine, jinja2.Undefined)
            refusal = (other._undefined_hint, other._undefined_exception, other._undefined_name)
            assert (mine._undefined_hint, mine._undefined_exception, mine._undefined_name) == refusal
        else:
            assert mine == other


def _reference_path_join(base: str, *parts: str) -> str:
    """Go's filepath.Join, then the containment check: the definition path_join keeps."""
    import posixpath

    joined = "/".join(p for p in (base, *parts) if p)
    cleaned = posixpath.normpath(joined) if joined else ""
    root = posixpath.normpath(base) if base else ""
    if root and cleaned != root and not cleaned.startswith(root.rstrip("/") + "/"):
        raise ValueError(f"path {cleaned!r} is outside {root!r}")
    return cleaned


_PATH_WORDS = st.sampled_from(
    [
        "",
        "/",
        "..",
        ".",
        "a",
        "b/",
        "/etc/flyte/secrets",
        "a/../..",
        "//x",
        "s..",
        "//",
        "new-1",
        ".env",
        "x y",
        "a//b",
    ]
)


@given(st.lists(_PATH_WORDS, min_size=1, max_size=4))
@settings(max_examples=500)
def test_path_join_is_gos_join_and_stays_inside_its_base(words: list[str]) -> None:
    from secretpatch.core.templating.jinja import path_join

    def outcome(join: Any) -> tuple[str, str]:
        try:
            return "path", join(*words)
        except ValueError as exc:
            return "refused", str(exc)

    assert outcome(path_join) == outcome(_reference_path_join)
