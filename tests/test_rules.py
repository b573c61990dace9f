"""Rules and templates load once; every mistake stops loading with file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonpatch
import pytest
from secretpatch import Engine, LoadError, Rejected, RenderError

from .conftest import ROOT, flyte_pod, run_cli

GCP_RULE = (ROOT / "rules" / "gcp.yaml").read_text()
POD = flyte_pod({"group": "a", "group_version": "1"}, {"group": "b", "group_version": "2"})


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def engine_with(tmp_path: Path, rule: str | None = None, templates: dict[str, str] | None = None) -> Engine:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "templates" / "gcp").mkdir(parents=True, exist_ok=True)
    if rule is not None:
        (tmp_path / "rules" / "gcp.yaml").write_text(rule)
    for name, text in (templates or {}).items():
        (tmp_path / "templates" / name).write_text(text)
    return Engine.from_config(
        {"secretpatch": {"rules": str(tmp_path / "rules"), "templates": str(tmp_path / "templates")}}
    )


def test_an_unknown_merge_mode_names_file_line_and_the_modes(tmp_path: Path) -> None:
    rule = GCP_RULE.replace("merge: once", "merge: onse")
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    path = tmp_path / "rules" / "gcp.yaml"
    assert str(caught.value) == (
        f"{path}:{line_of(rule, 'onse')}: unknown merge mode 'onse'; "
        "expected one of: append, once, per-container, prepend, set, or a mapping from each "
        "profile of secretpatch.flyte (v2, v1) to one"
    )


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("v1: per-container", "v1: per-containr", "per-containr", "unknown merge mode 'per-containr'"),
        ("v1: per-container", "v3: per-container", "v3:", "unknown profile 'v3'; profiles: v1, v2"),
        (
            "      v1: per-container\n",
            "",
            "    merge:\n      # Flyte 2.0",
            "merge names no mode for the profile v1 of secretpatch.flyte; give one for each of v2, v1",
        ),
    ],
)
def test_a_merge_mode_per_profile_is_checked_for_every_profile(
    tmp_path: Path, old: str, new: str, needle: str, message: str
) -> None:
    """The config picks v2 (the default), yet a mistake in the v1 mode stops loading too."""
    rule = GCP_RULE.replace(old, new)
    assert rule != GCP_RULE
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    assert caught.value.line == rule[: rule.index(needle)].count("\n") + 1
    assert caught.value.message.startswith(message)


def test_the_profile_picks_the_merge_mode_flyte_release_by_release() -> None:
    """Flyte 2.0 replaces the user's variable and puts the webhook's first; 1.16 keeps the
    user's and appends what is missing, in its own order."""
    pod = flyte_pod({"group": "a", "group_version": "1"})
    pod["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/mine"},
    ]
    envs = {}
    for profile in ("v2", "v1"):
        engine = Engine.from_config({"secretpatch": {"flyte": profile}})
        envs[profile] = engine.mutate(pod).pod["spec"]["containers"][0]["env"]
    assert envs["v2"] == [
        {"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""},
        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/etc/flyte/secrets"},
        {"name": "A", "value": "1"},
    ]
    assert envs["v1"] == [
        {"name": "A", "value": "1"},
        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/mine"},
        {"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""},
    ]


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        (
            "configSection:",
            "configSecton:",
            "configSecton",
            "unknown key 'configSecton'; did you mean 'configSection'?",
        ),
        (
            "    merge: once\n",
            "    merge: once\n    feild: env\n",
            "feild",
            "unknown key 'feild'; did you mean 'field'?",
        ),
        (
            "    field: volumeMounts\n",
            "",
            "template: gcp/mount.yaml.j2",
            "merge mode 'per-container' needs a 'field'",
        ),
        (
            "into: [volumes]",
            "into: [volumes]\n    field: env",
            "field: env",
            "merge mode 'once' merges into pod-spec lists",
        ),
        (
            "into: [initContainers, containers]\n    field: env",
            "into: [tolerations]\n    field: env",
            "into: [tolerations]",
            "'tolerations' is not a container list",
        ),
        (
            "ENV_VAR: >-",
            "ENV_VARS: >-",
            "ENV_VARS",
            "unknown mount requirement 'ENV_VARS'; did you mean 'ENV_VAR'?",
        ),
        ("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,252}", "[A-Z", 'pattern: "[A-Z', "invalid regular expression"),
        (
            "gcp/volume.yaml.j2",
            "gcp/volumes.yaml.j2",
            "volumes.yaml.j2",
            "template 'gcp/volumes.yaml.j2' not found",
        ),
        ("name: gcp\n", "name: gcp\nname: gcp\n", "name: gcp", "duplicate key 'name'"),
        ("fragments:\n", "fragments: [\n", "fragments: [", "invalid YAML"),
    ],
)
def test_rule_mistakes_are_located(tmp_path: Path, old: str, new: str, needle: str, message: str) -> None:
    assert old in GCP_RULE
    rule = GCP_RULE.replace(old, new, 1)
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    assert caught.value.file == str(tmp_path / "rules" / "gcp.yaml")
    first_line = needle.split("\n", maxsplit=1)[0]
    expected_lines = {line_of(rule, first_line), line_of(rule, first_line) + 1}
    assert caught.value.line in expected_lines
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        ("gcp/volume.yaml.j2", 'name: "{{ values.volumeName }"\n', 1, "Jinja syntax error"),
        ("gcp/volume.yaml.j2", 'a: 1\nname: "{{ secrt.group }}"\n', 2, "unknown name 'secrt'"),
        ("gcp/init-container.yaml.j2", 'name: x\nimage: "{{ secret.grop }}"\n', 2, "has no attribute 'grop'"),
        (
            "gcp/volume.yaml.j2",
            "- just\n- strings\n",
            None,
            "a fragment must render a mapping with a non-empty string 'name'",
        ),
        ("gcp/volume.yaml.j2", "emptyDir: {}\n", None, "got a mapping with keys ['emptyDir']"),
        ("gcp/volume.yaml.j2", '"{{ values.volumeName }}": x\n', 1, "holds Jinja; only values may"),
        ("gcp/env.yaml.j2", "- {name: A}\n- {name: A}\n", None, "renders the name 'A' twice"),
        ("gcp/command.sh.j2", "gcloud {{ secret.group | shquote }\n", 1, "Jinja syntax error"),
        (
            "gcp/command.sh.j2",
            "\n\ngcloud {{ secret.group | nosuchfilter }}\n",
            3,
            "No filter named 'nosuchfilter'",
        ),
        ("gcp/command.sh.j2", "\ngcloud {{ scret }}\n", 2, "unknown name 'scret'"),
        ("gcp/volume.yaml.j2", "name: [unclosed\n", 2, "invalid YAML"),
    ],
)
def test_template_mistakes_are_located(
    tmp_path: Path, name: str, text: str, line: int | None, message: str
) -> None:
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, templates={name: text})
    assert caught.value.file is not None
    assert caught.value.file.endswith(name)
    assert caught.value.line == line
    assert message in str(caught.value)


def test_bundled_templates_fill_in_what_the_operator_does_not_override(tmp_path: Path) -> None:
    engine = engine_with(
        tmp_path,
        templates={
            "gcp/mount.yaml.j2": 'name: "{{ values.volumeName }}"\nmountPath: /secrets\nreadOnly: true\n'
        },
    )
    spec = engine.mutate(POD).pod["spec"]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "gcp-secret-vol", "mountPath": "/secrets", "readOnly": True}
    ]
    assert spec["initContainers"][0]["image"] == "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"


def test_an_operator_rules_folder_overrides_by_file_name(tmp_path: Path) -> None:
    rule = GCP_RULE.replace("containerPrefix: gcp-pull-secret-", "containerPrefix: fetch-secret-")
    spec = engine_with(tmp_path, rule).mutate(POD).pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["fetch-secret-0", "fetch-secret-1"]


def test_a_per_secret_container_fragment_is_merged_for_every_secret(tmp_path: Path) -> None:
    """A fragment that names `secret` is not idempotent across secrets: no skipping."""
    rule = GCP_RULE.replace(
        "  - template: gcp/env.yaml.j2\n",
        "  - template: gcp/last.yaml.j2\n    merge: prepend\n    into: [containers]\n    field: env\n  - template: gcp/env.yaml.j2\n",
    )
    engine = engine_with(
        tmp_path, rule, {"gcp/last.yaml.j2": 'name: LAST_SECRET\nvalue: "{{ secret.group }}"\n'}
    )
    mutation = engine.mutate(POD)
    env = mutation.pod["spec"]["containers"][0]["env"]
    assert [v["name"] for v in env] == [
        "FLYTE_SECRETS_FILE_PREFIX",
        "FLYTE_SECRETS_DEFAULT_DIR",
        "LAST_SECRET",
    ]
    assert env[2]["value"] == "b"
    assert jsonpatch.apply_patch(POD, mutation.patch) == mutation.pod


def test_a_pod_level_prepend_keeps_container_state_on_the_right_container(tmp_path: Path) -> None:
    """Prepending init containers shifts indexes; later per-container merges must follow."""
    rule = GCP_RULE.replace(
        "    merge: append\n    into: [initContainers]", "    merge: prepend\n    into: [initContainers]"
    )
    pod = flyte_pod(
        {"group": "a", "group_version": "1"},
        {"group": "b", "group_version": "2"},
        initContainers=[{"name": "user", "image": "x"}],
    )
    mutation = engine_with(tmp_path, rule).mutate(pod)
    inits = mutation.pod["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["gcp-pull-secret-2", "gcp-pull-secret-1", "user"]
    for container in inits:
        assert [v["name"] for v in container["env"]] == [
            "FLYTE_SECRETS_FILE_PREFIX",
            "FLYTE_SECRETS_DEFAULT_DIR",
        ]
        assert len(container["volumeMounts"]) == 1
    assert jsonpatch.apply_patch(pod, mutation.patch) == mutation.pod


def test_an_init_container_name_the_pod_already_uses_is_refused(engine: Engine) -> None:
    pod = flyte_pod(
        {"group": "a", "group_version": "1"},
        {"group": "b", "group_version": "1"},
        containers=[{"name": "gcp-pull-secret-1", "image": "x"}],
    )
    with pytest.raises(
        Rejected,
        match=r"flyte.secrets/s1: cannot add 'gcp-pull-secret-1': the name 'gcp-pull-secret-1' is already used by spec.containers\[0\]",
    ):
        engine.mutate(pod)


def test_a_template_that_fails_only_on_a_real_request_is_a_render_error(tmp_path: Path) -> None:
    engine = engine_with(
        tmp_path, templates={"gcp/command.sh.j2": "gcloud {{ 1 // (secret.group_version | int - 2) }}\n"}
    )
    pod = flyte_pod({"group": "a", "group_version": "2"})
    with pytest.raises(RenderError) as caught:
        engine.mutate(pod)
    assert caught.value.file is not None and caught.value.file.endswith("gcp/command.sh.j2")
    assert caught.value.line == 1
    assert "modulo by zero" in str(caught.value)
    assert caught.value.source == "gcloud {{ 1 // (secret.group_version | int - 2) }}"


def test_a_load_error_carries_the_line_at_fault_and_the_cli_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = GCP_RULE.replace("merge: once", "merge: onse")
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    line = line_of(rule, "onse")
    assert caught.value.line == line and caught.value.source == "    merge: onse"
    assert "\n" not in str(caught.value), "one line: it may reach a log line"
    (tmp_path / "config.yaml").write_text(f"secretpatch:\n  rules: {tmp_path / 'rules'}\n")
    code, _, err = run_cli(
        capsys, "render", "--config", str(tmp_path / "config.yaml"), str(ROOT / "examples" / "pod.yaml")
    )
    assert code == 2
    assert err.splitlines()[1:] == [f"  {line} |     merge: onse"]


def test_a_template_error_at_load_shows_the_template_line(tmp_path: Path) -> None:
    template = 'name: gcp-secret-vol\nemptyDir:\n  medium: "{{ values.nosuch | upper }"\n'
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, templates={"gcp/volume.yaml.j2": template})
    assert caught.value.line == 3
    assert caught.value.excerpt().endswith('  3 |   medium: "{{ values.nosuch | upper }"')


def test_templates_cannot_mutate_what_they_are_given(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="unsafe|access to attribute"):
        engine_with(tmp_path, templates={"gcp/command.sh.j2": "{{ values.update({'x': 1}) }}\n"})
    with pytest.raises(LoadError, match="unsafe|access to attribute"):
        engine_with(
            tmp_path, templates={"gcp/command.sh.j2": "{{ secret.__class__.__init__.__globals__ }}\n"}
        )


def test_a_rule_name_defined_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    shutil.copy(ROOT / "rules" / "gcp.yaml", tmp_path / "rules" / "other.yaml")
    with pytest.raises(LoadError, match="rule 'gcp' is also defined in"):
        Engine.from_config({"secretpatch": {"rules": str(tmp_path / "rules")}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name: x\nimage: "{{ secret.__class__ }}"\n', "unsafe"),
        ('name: x\nimage: "v-{{ secret._fields }}"\n', "has no attribute '_fields'"),
        ('name: x\nimage: "{{ values.nothere }}"\n', "has no attribute 'nothere'"),
    ],
)
def test_plain_lookups_keep_the_sandbox_and_strict_undefined(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        engine_with(tmp_path, templates={"gcp/init-container.yaml.j2": text})


def test_a_plain_lookup_yields_the_value_itself_and_mixed_text_a_string(tmp_path: Path) -> None:
    template = 'name: "{{ values.containerPrefix }}{{ index }}"\nimage: x\nresources: "{{ values.resources }}"\nargs: ["n={{ index }}"]\n'
    pod = flyte_pod({"group": "a", "group_version": "1"})
    init = (
        engine_with(tmp_path, templates={"gcp/init-container.yaml.j2": template})
        .mutate(pod)
        .pod["spec"]["initContainers"][0]
    )
    assert init["name"] == "gcp-pull-secret-0"
    assert init["resources"] == {
        "requests": {"cpu": "200m", "memory": "500Mi"},
        "limits": {"cpu": "200m", "memory": "500Mi"},
    }
    assert init["args"] == ["n=0"]


def test_a_character_yaml_does_not_allow_is_one_line_naming_its_line(tmp_path: Path) -> None:
    rule = GCP_RULE.replace("# The fragments", "# a bell \x07\n# The fragments")
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    line = line_of(rule, "a bell")
    assert str(caught.value).startswith(f"{tmp_path / 'rules' / 'gcp.yaml'}:{line}: invalid YAML: ")
    assert "\n" not in str(caught.value) and caught.value.source == "# a bell \x07"
    assert caught.value.excerpt().endswith(f"  {line} | # a bell \\x07")


def test_what_a_rule_accepts_may_depend_on_its_values(tmp_path: Path) -> None:
    """A setting under `accept` written as one expression over `values` is evaluated at load:
    an operator's switch (secretpatch.values) can let a rule take ENV_VAR requests or make a
    field optional, with no code."""
    rule = GCP_RULE.replace(
        "  mountRequirement:\n    ANY: true\n",
        "  mountRequirement:\n    ANY: \"{{ true if values.keyFiles else 'turn keyFiles on for ANY' }}\"\n",
    ).replace(
        '    group_version:\n      required: "{{ not values.flyte2Requests }}"\n',
        '    group_version:\n      required: "{{ not values.keyFiles }}"\n',
    )
    assert rule.count("values.keyFiles") == GCP_RULE.count("values.keyFiles") + 2, "both replacements made"
    default = engine_with(tmp_path, rule)
    with pytest.raises(Rejected, match="turn keyFiles on for ANY"):
        default.mutate(flyte_pod({"group": "a", "group_version": "1"}))
    assert default.rules[0].fields["group_version"].required is True
    (tmp_path / "config.yaml").write_text(
        f"secretpatch:\n  rules: {tmp_path / 'rules'}\n  templates: {tmp_path / 'templates'}\n"
        "  values:\n    gcp: {keyFiles: true}\n"
    )
    switched = Engine.from_config(tmp_path / "config.yaml")
    assert switched.mutate(flyte_pod({"group": "a", "group_version": "1"})).patch
    assert switched.rules[0].fields["group_version"].required is False


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('"{{ values.nosuch.deeper }}"', "has no attribute 'nosuch'"),
        ('"{{ 1 // 0 }}"', "by zero"),
        ('"{{ secret.group }}"', "'secret' is undefined"),
        ('"{{ values.keyFiles + }}"', "unexpected"),
        ('"{{ 3 }}"', "use true to accept, a refusal message, or an expression over values"),
    ],
)
def test_an_expression_under_accept_that_fails_names_file_and_line(
    tmp_path: Path, setting: str, message: str
) -> None:
    rule = GCP_RULE.replace("    FILE: true\n", f"    FILE: {setting}\n")
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    assert caught.value.line == line_of(rule, "    FILE: ")
    assert message in caught.value.message


def test_a_fragment_can_be_switched_off_by_values_and_then_does_not_exist(tmp_path: Path) -> None:
    """`when:` is evaluated at load: off, the fragment renders nothing and writes no list; a
    mistake in it still stops loading."""
    rule = GCP_RULE.replace(
        "  - template: gcp/mount.yaml.j2\n",
        '  - template: gcp/mount.yaml.j2\n    when: "{{ not values.keyFiles }}"\n',
    )
    assert rule != GCP_RULE
    on = engine_with(tmp_path, rule)
    assert [f.fragment.name for f in on.rules[0].fragments].count("gcp/mount.yaml.j2") == 1
    assert on.mutate(POD).patch == Engine.from_config(None).mutate(POD).patch
    (tmp_path / "config.yaml").write_text(
        f"secretpatch:\n  rules: {tmp_path / 'rules'}\n  templates: {tmp_path / 'templates'}\n"
        "  values:\n    gcp: {keyFiles: true}\n"
    )
    off = Engine.from_config(tmp_path / "config.yaml")
    assert "gcp/mount.yaml.j2" not in [f.fragment.name for f in off.rules[0].fragments]
    mounts = off.mutate(POD).pod["spec"]["containers"][0].get("volumeMounts")
    assert mounts is None
    broken = rule.replace('when: "{{ not values.keyFiles }}"', 'when: "{{ values.keyFiles + 1 }}"')
    with pytest.raises(LoadError, match="when must be true, false"):
        engine_with(tmp_path, broken)


MANIFEST_FRAGMENT = """\
  - template: gcp/manifest.yaml.j2
    per: pod
    merge: set
    into: [annotations]
"""


def test_a_per_pod_fragment_renders_once_with_every_secret_the_rule_took(tmp_path: Path) -> None:
    """`per: pod`: one render per pod, seeing `secrets` in the pod's order (annotation, label,
    texts), merged in its place among the first secret's fragments. Here a rule writes one
    annotation listing every secret it fetched."""
    rule = GCP_RULE.replace("fragments:\n", "fragments:\n" + MANIFEST_FRAGMENT, 1)
    template = (
        'secretpatch.io/fetched: "{% for s in secrets %}{{ s.annotation }}={{ s.label }}'
        '{% if not loop.last %},{% endif %}{% endfor %}"\n'
        'secretpatch.io/first-index: "{{ index | string }}"\n'
    )
    engine = engine_with(tmp_path, rule, {"gcp/manifest.yaml.j2": template})
    pod = flyte_pod(
        {"group": "b", "group_version": "2"},
        {"group": "a", "group_version": "1"},
        initContainers=[{"name": "setup", "image": "x"}],
    )
    pod["metadata"]["annotations"]["flyte.secrets/s10"] = pod["metadata"]["annotations"].pop(
        "flyte.secrets/s0"
    )
    mutation = engine.mutate(pod)
    annotations = mutation.pod["metadata"]["annotations"]
    assert annotations["secretpatch.io/fetched"] == "flyte.secrets/s1=a/1,flyte.secrets/s10=b/2"
    assert annotations["secretpatch.io/first-index"] == "1"
    sets = [op for op in mutation.patch if op["path"].startswith("/metadata/annotations/secretpatch.io")]
    assert len(sets) == 2, "rendered and merged once, not once per secret"
    source = mutation.sources[mutation.patch.index(sets[0])]
    assert (source.template, source.annotation, source.secret) == (
        "gcp/manifest.yaml.j2",
        "flyte.secrets/s1,flyte.secrets/s10",
        "2 secrets",
    )
    assert mutation.patch[0]["path"] == "/metadata/annotations/secretpatch.io~1fetched", "first in place"
    assert engine.mutate(flyte_pod()).patch == [], "no secrets, no per-pod render"


@pytest.mark.parametrize(
    ("per", "template", "message"),
    [
        (
            "pod",
            'x: "{{ secret.group }}"\n',
            "unknown name 'secret' in '{{ secret.group }}'; per-pod fragment",
        ),
        ("pod", 'x: "{{ texts.command }}"\n', "unknown name 'texts'"),
        ("secret", 'x: "{{ secrets | length }}"\n', "unknown name 'secrets'"),
        ("each", 'x: "1"\n', "per must be 'secret' (rendered for each secret) or 'pod'"),
    ],
)
def test_a_fragment_sees_only_the_names_of_its_kind(
    tmp_path: Path, per: str, template: str, message: str
) -> None:
    rule = GCP_RULE.replace(
        "fragments:\n", "fragments:\n" + MANIFEST_FRAGMENT.replace("per: pod", f"per: {per}"), 1
    )
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule, {"gcp/manifest.yaml.j2": template})
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("{fetch: batch}", "'batch' is not a valid value for fetch: it must be per-secret or batched"),
        ("{fetch: batched, fetchConcurrency: 0}", "0 is not a valid value for fetchConcurrency"),
        ("{fetch: batched, fetchConcurrency: '4'}", "'4' is not a valid value for fetchConcurrency"),
        ("{fetchConcurrency: true}", "True is not a valid value for fetchConcurrency"),
        ("{keyFiles: 'false'}", "'false' is not a valid value for keyFiles: it must be true or false"),
    ],
)
def test_a_value_that_breaks_its_check_is_refused_at_the_config_key(
    tmp_path: Path, values: str, message: str
) -> None:
    """A misspelt switch must not quietly pick a branch (`fetch: batch` would otherwise fetch
    nothing: neither fetcher's `when` holds)."""
    config = tmp_path / "config.yaml"
    config.write_text(f"secretpatch:\n  values:\n    gcp: {values}\n")
    with pytest.raises(LoadError) as caught:
        Engine.from_config(config)
    assert (caught.value.file, caught.value.line) == (str(config), 3)
    assert caught.value.message.startswith("secretpatch.values.gcp.")
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ("  fetsh: {check: '{{ true }}', rule: x}\n", "no value named 'fetsh'; did you mean 'fetch'"),
        ("  fetch: {check: 'yes', rule: x}\n", "check must be one expression over values"),
        ("  fetch: {check: '{{ true }}'}\n", "a value check needs a 'rule'"),
        ("  fetch: {check: '{{ true }}', rule: x, message: y}\n", "unknown key 'message'"),
    ],
)
def test_a_broken_value_check_names_the_rule_file_and_line(tmp_path: Path, checks: str, message: str) -> None:
    fetch = "  fetch:\n    check: \"{{ values.fetch in ['per-secret', 'batched'] }}\"\n    rule: must be per-secret or batched\n"
    assert fetch in GCP_RULE
    rule = GCP_RULE.replace(fetch, checks, 1)
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    assert caught.value.file == str(tmp_path / "rules" / "gcp.yaml")
    assert caught.value.line == line_of(rule, checks.strip()[:8])
    assert message in caught.value.message


def test_a_template_that_reads_the_pod_through_an_include_reads_the_pod(tmp_path: Path) -> None:
    """The memo and the render cache are off for a rule whose templates read the pod; an
    include must not hide that (nor the request fields it reads, which are then validated)."""
    templates = {
        "gcp/command.sh.j2": "{% include 'gcp/named.j2' %}",
        "gcp/named.j2": "echo {{ pod.metadata.name | shquote }} {{ secret.key | shquote }}",
    }
    engine = engine_with(tmp_path, GCP_RULE, templates)
    assert engine.rules[0].reads_pod and engine.memo is None
    assert "key" in engine.rules[0].reads
    mutation = engine.mutate(flyte_pod({"group": "a", "group_version": "1", "key": "k"}))
    assert mutation.injected[0].texts["command"] == "echo task-pod k"


def test_an_include_must_name_its_template(tmp_path: Path) -> None:
    templates = {"gcp/command.sh.j2": "\n{% include values.which %}"}
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, GCP_RULE, templates)
    assert caught.value.message == "include a template by its name, a constant string"
    assert caught.value.line == 2


def test_unique_must_be_a_boolean(tmp_path: Path) -> None:
    rule = GCP_RULE.replace("    unique: true\n", "    unique: yes please\n", 1)
    assert rule != GCP_RULE
    with pytest.raises(LoadError) as caught:
        engine_with(tmp_path, rule)
    assert caught.value.message == "unique must be true or false"
    assert caught.value.line == line_of(rule, "unique: yes please")
