"""Flyte's webhook section, whole or alone, with our own keys beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from secretpatch import Engine, LoadError

from .conftest import ROOT, flyte_pod

POD = flyte_pod({"group": "a", "group_version": "1"})


def image_of(engine: Engine) -> str:
    image: str = engine.mutate(POD).pod["spec"]["initContainers"][0]["image"]
    return image


def test_the_section_alone_and_a_whole_flyte_config_mean_the_same(tmp_path: Path) -> None:
    section = "secretManagerTypes: [GCP]\ngcpSecretManager:\n  sidecarImage: example.com/a:1\n"
    (tmp_path / "section.yaml").write_text(section)
    whole = "propeller:\n  workers: 4\nwebhook:\n" + "".join(
        "  " + line + "\n" for line in section.splitlines()
    )
    (tmp_path / "whole.yaml").write_text(whole)
    assert image_of(Engine.from_config(tmp_path / "section.yaml")) == "example.com/a:1"
    assert image_of(Engine.from_config(tmp_path / "whole.yaml")) == "example.com/a:1"
    assert image_of(Engine.from_config(str(tmp_path / "whole.yaml"))) == "example.com/a:1"


def test_json_config_files_work(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"webhook": {"gcpSecretManager": {"sidecarImage": "example.com/j:1"}}}')
    assert image_of(Engine.from_config(tmp_path / "c.json")) == "example.com/j:1"


def test_no_config_and_an_empty_file_give_flytes_defaults(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    for source in (None, {}, tmp_path / "empty.yaml"):
        assert image_of(Engine.from_config(source)) == "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "secretManagerTypess: [GCP]\n",
            1,
            "unknown key 'secretManagerTypess'; did you mean 'secretManagerTypes'?",
        ),
        ("secretManagerTypes: [Hashi]\n", 1, "unknown secret manager type 'Hashi'; valid types: AWS, Azure"),
        (
            "webhook:\n  gcpSecretManger: {}\n",
            2,
            "unknown key 'webhook.gcpSecretManger'; did you mean 'gcpSecretManager'?",
        ),
        (
            "webhook:\n  gcpSecretManager:\n    sidecarImg: x\n",
            3,
            "unknown key 'sidecarImg'; did you mean 'sidecarImage'?",
        ),
        ("secretManagerTypes: [GPC]\n", 1, "unknown secret manager type 'GPC'; did you mean 'GCP'?"),
        (
            "secretManagerTypes: [K8s]\n",
            1,
            "no rule is enabled: the config enables K8s, and secretpatch serves GCP; add one of those",
        ),
        (
            "webhook:\n  secretManagerType: K8s\n",
            2,
            "no rule is enabled: the config enables K8s, and secretpatch serves GCP",
        ),
        ("secretManagerType: [GCP]\n", 1, "secretManagerType must be one name, such as GCP"),
        (
            "webhook:\n  gcpSecretManager: {}\n  gcpsecretmanager: {}\n",
            3,
            "'gcpsecretmanager' and 'gcpSecretManager' are the same key to Flyte, which ignores case",
        ),
        ("secretManagerTypes: GCP\n", 1, "secretManagerTypes must be a list of names"),
        ("- a\n", 1, "the config must be a mapping"),
        ("Webhook: {}\n", 1, "unknown key 'Webhook'"),
        ("webhook: {}\nWebhook: {}\n", 2, "unknown key 'Webhook'; did you mean 'webhook'?"),
        ("secretpatch:\n  rule: x\n", 2, "unknown key 'secretpatch.rule'; did you mean 'rules'?"),
        ("secretpatch:\n  rules: nowhere\n", 2, "secretpatch.rules: no folder at"),
        ("secretpatch:\n  values:\n    gpc: {}\n", 3, "no rule named 'gpc'; did you mean 'gcp'?"),
        (
            "secretpatch:\n  values:\n    gcp:\n      mountPth: /x\n",
            4,
            "unknown value 'mountPth'; did you mean 'mountPath'?",
        ),
        ("webhook:\n  a: 1\n  a: 2\n", 3, "duplicate key 'a'"),
        (
            "secretpatch:\n  flyte: '1.16'\n",
            2,
            'secretpatch.flyte is "1.16"; expected one of v2: Flyte 2.0; v1: Flyte 1.16',
        ),
        (
            "webhook:\n  secretpatch:\n    onRefusal: allow\n",
            3,
            'webhook.secretpatch.onRefusal is "allow"; expected one of deny:',
        ),
        ("secretpatch:\n  onRefusal: [admit]\n", 2, 'secretpatch.onRefusal is ["admit"]; expected'),
        ("webhook: [\n", 2, "invalid YAML"),
    ],
)
def test_config_mistakes_name_file_line_and_the_closest_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(LoadError) as caught:
        Engine.from_config(path)
    assert caught.value.file == str(path)
    assert caught.value.line == line
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_a_missing_config_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="cannot read the config file: No such file or directory"):
        Engine.from_config(tmp_path / "absent.yaml")


def test_a_flyte_manager_without_a_rule_is_warned_about_not_refused() -> None:
    engine = Engine.from_config({"webhook": {"secretManagerTypes": ["K8s", "GCP"]}})
    assert any("the config enables K8s, which secretpatch has no rule for" in w for w in engine.warnings)
    assert image_of(engine)


def test_a_gcp_section_while_gcp_is_disabled_is_reported(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no rule is enabled"):
        Engine.from_config({"secretManagerTypes": ["AWS"], "gcpSecretManager": {}})


def test_our_values_override_the_rule_defaults() -> None:
    engine = Engine.from_config({"secretpatch": {"values": {"gcp": {"mountPath": "/secrets"}}}})
    spec = engine.mutate(POD).pod["spec"]
    assert spec["containers"][0]["env"][1] == {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/secrets"}
    assert "--out-file=/secrets/a/1 " in spec["initContainers"][0]["command"][2]


def test_relative_folders_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ops" / "templates" / "gcp").mkdir(parents=True)
    (tmp_path / "ops" / "templates" / "gcp" / "volume.yaml.j2").write_text(
        'name: "{{ values.volumeName }}"\nemptyDir: {medium: Memory, sizeLimit: 16Mi}\n'
    )
    (tmp_path / "ops" / "config.yaml").write_text("secretpatch:\n  templates: templates\n")
    engine = Engine.from_config(tmp_path / "ops" / "config.yaml")
    volume = engine.mutate(POD).pod["spec"]["volumes"][0]
    assert volume == {"name": "gcp-secret-vol", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
    # Every other template still comes from the bundled folder.
    assert engine.mutate(POD).pod["spec"]["initContainers"][0]["name"] == "gcp-pull-secret-0"


def test_the_example_config_loads_without_warnings() -> None:
    assert Engine.from_config(ROOT / "examples" / "config.yaml").warnings == ()


FLYTE_2_KEYS = {
    "disableCreateMutatingWebhookConfig": True,
    "webhookTimeout": 30,
    "cacheInvalidationPort": 9444,
    "kubeClientConfig": {"qps": 100, "burst": 50, "timeout": "30s"},
    "secretEnvVarPrefix": "_UNION_",
    "imageBuilderConfig": {"secretName": "builder"},
}


def test_every_key_of_flytes_2_0_section_loads_with_one_warning_each() -> None:
    engine = Engine.from_config({"webhook": {"secretManagerTypes": ["GCP"], **FLYTE_2_KEYS}})
    for key in FLYTE_2_KEYS:
        assert sum(f"webhook.{key} is ignored" in w for w in engine.warnings) == 1, key
    assert image_of(engine)


def test_keys_and_manager_names_match_whatever_their_case_as_in_flyte() -> None:
    engine = Engine.from_config(
        {"webhook": {"SecretManagerTypes": ["gcp"], "gcpsecretmanager": {"SIDECARIMAGE": "example.com/c:1"}}}
    )
    assert image_of(engine) == "example.com/c:1"


def test_flyte_1_16s_singular_manager_key_enables_gcp_and_the_list_wins_when_it_has_names() -> None:
    assert image_of(Engine.from_config({"webhook": {"secretManagerType": "GCP"}}))
    assert image_of(Engine.from_config({"webhook": {"secretManagerTypes": [], "secretManagerType": "gcp"}}))
    with pytest.raises(LoadError, match="the config enables K8s"):
        Engine.from_config({"webhook": {"secretManagerTypes": ["K8s"], "secretManagerType": "GCP"}})


def test_a_section_naming_no_manager_enables_gcp_with_a_warning_and_no_config_silently() -> None:
    """Flyte would enable only its default manager (K8s, or Embedded in 2.0); secretpatch
    exists to serve GCP, so it does, and says so. Only its own keys, or none: no warning."""
    engine = Engine.from_config({"webhook": {"gcpSecretManager": {"sidecarImage": "example.com/c:1"}}})
    assert image_of(engine) == "example.com/c:1"
    (warning,) = [w for w in engine.warnings if "names no secret manager" in w]
    assert "Flyte would enable only its default (K8s in 1.16, Embedded in 2.0)" in warning
    for quiet in (None, {}, {"secretpatch": {"flyte": "v1"}}, {"webhook": {"secretManagerType": "GCP"}}):
        assert not any("names no secret manager" in w for w in Engine.from_config(quiet).warnings)


def test_global_is_accepted_with_a_warning_that_secretpatch_has_no_global_injector() -> None:
    engine = Engine.from_config({"webhook": {"secretManagerTypes": ["Global", "GCP"]}})
    assert any("Flyte's global secret injector; secretpatch has none" in w for w in engine.warnings)
    assert image_of(engine)
