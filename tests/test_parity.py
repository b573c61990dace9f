"""Each fact of docs/flyte-parity.md about the mutation, as a test (the webhook-server facts
are tested with the server)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from secretpatch import Engine, Rejected
from secretpatch.core.requests import decode_annotation, decode_base32

from .conftest import ROOT, admission_review, annotation, flyte_b32, flyte_pod
from .reference import Req, gcloud_line, reference_mutate

TESTSECRET_LINE = (
    "gcloud secrets versions access TestSecret/versions/2 --out-file=/etc/flyte/secrets/testsecret/2 || "
    "gcloud secrets versions access 2 --secret=TestSecret --out-file=/etc/flyte/secrets/testsecret/2; "
    "chmod +rX /etc/flyte/secrets/testsecret /etc/flyte/secrets/testsecret/2"
)


def test_the_exact_testsecret_vector_on_a_pod_with_no_containers(engine: Engine) -> None:
    pod = flyte_pod({"group": "TestSecret", "group_version": "2"}, containers=[])
    spec = engine.mutate(pod).pod["spec"]
    assert spec["volumes"] == [{"name": "gcp-secret-vol", "emptyDir": {"medium": "Memory"}}]
    assert spec["initContainers"] == [
        {
            "name": "gcp-pull-secret-0",
            "image": "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine",
            "command": ["sh", "-ec", TESTSECRET_LINE],
            "env": [
                {"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""},
                {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/etc/flyte/secrets"},
            ],
            "volumeMounts": [{"name": "gcp-secret-vol", "mountPath": "/etc/flyte/secrets"}],
            "resources": {
                "requests": {"cpu": "200m", "memory": "500Mi"},
                "limits": {"cpu": "200m", "memory": "500Mi"},
            },
        }
    ]
    assert spec["containers"] == []


def test_the_reference_gcloud_line_is_the_testsecret_vector() -> None:
    assert gcloud_line("TestSecret", "2") == TESTSECRET_LINE


def test_annotation_vector_with_every_special_character_in_the_group() -> None:
    assert decode_base32("m4zg54lqhiqceozhhixvyxbcbi") == b'group: ";\':/\\\\"\n'
    request = decode_annotation("flyte.secrets/s0", "m4zg54lqhiqceozhhixvyxbcbi")
    assert request.group == ";':/\\"
    assert len(request.group) == 5


def test_annotation_vector_with_a_key() -> None:
    assert decode_base32("nnsxsoraejwxsx2lmv3secq") == b'key: "my_key"\n'
    assert decode_annotation("flyte.secrets/s0", "nnsxsoraejwxsx2lmv3secq").key == "my_key"


def test_the_test_encoder_matches_the_vectors() -> None:
    assert flyte_b32('key: "my_key"\n') == "nnsxsoraejwxsx2lmv3secq"
    assert annotation(group=";':/\\") == "m4zg54lqhiqceozhhixvyxbcbi"
    assert annotation(key="my_key") == "nnsxsoraejwxsx2lmv3secq"


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ('group: "g"\n', "group", "g"),
        ('group_version: "7"\n', "group_version", "7"),
        ('key: "k"\n', "key", "k"),
        ("mount_requirement: FILE\n", "mount_requirement", "FILE"),
        ("mount_requirement: ENV_VAR\n", "mount_requirement", "ENV_VAR"),
        ("mount_requirement: 2\n", "mount_requirement", "FILE"),
        ('env_var: "MY_VAR"\n', "env_var", "MY_VAR"),
        ("", "mount_requirement", "ANY"),
    ],
)
def test_core_secret_fields_and_mount_types_decode(text: str, field: str, expected: str) -> None:
    request = decode_annotation("flyte.secrets/s0", flyte_b32(text))
    assert getattr(request, field) == expected


def test_pods_without_the_label_are_left_alone(engine: Engine) -> None:
    pod = flyte_pod({"group": "a", "group_version": "1"})
    del pod["metadata"]["labels"]["inject-flyte-secrets"]
    assert engine.mutate(pod).patch == []
    pod["metadata"]["labels"]["inject-flyte-secrets"] = "false"
    assert engine.mutate(pod).patch == []


def test_a_labelled_pod_without_annotations_is_left_alone(engine: Engine) -> None:
    pod = flyte_pod()
    del pod["metadata"]["annotations"]
    assert engine.mutate(pod).patch == []


def test_secrets_are_injected_in_numeric_order_of_n(engine: Engine) -> None:
    pod = flyte_pod()
    pod["metadata"]["annotations"] = {
        "flyte.secrets/s10": annotation(group="ten", group_version="1"),
        "flyte.secrets/s2": annotation(group="two", group_version="1"),
        "flyte.secrets/s1": annotation(group="one", group_version="1"),
    }
    inits = engine.mutate(pod).pod["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["gcp-pull-secret-0", "gcp-pull-secret-1", "gcp-pull-secret-2"]
    assert ["/one/" in c["command"][2] for c in inits] == [True, False, False]
    assert ["/two/" in c["command"][2] for c in inits] == [False, True, False]
    assert ["/ten/" in c["command"][2] for c in inits] == [False, False, True]


def test_defaults_are_flytes_image_and_resources(engine: Engine) -> None:
    init = engine.mutate(flyte_pod({"group": "a", "group_version": "1"})).pod["spec"]["initContainers"][0]
    assert init["image"] == "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"
    assert init["resources"] == {
        "requests": {"cpu": "200m", "memory": "500Mi"},
        "limits": {"cpu": "200m", "memory": "500Mi"},
    }


def test_configured_image_and_resources_are_used() -> None:
    resources = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    engine = Engine.from_config(
        {"webhook": {"gcpSecretManager": {"sidecarImage": "example.com/gcloud:1", "resources": resources}}}
    )
    init = engine.mutate(flyte_pod({"group": "a", "group_version": "1"})).pod["spec"]["initContainers"][0]
    assert init["image"] == "example.com/gcloud:1"
    assert init["resources"] == resources


@pytest.mark.parametrize(
    "key",
    [
        "localCert",
        "metrics-prefix",
        "secretManagerType",
        "awsSecretManager",
        "azureSecretManager",
        "vaultSecretManager",
        "embeddedSecretManagerConfig",
    ],
)
def test_flytes_keys_secretpatch_does_not_use_are_accepted_with_one_warning(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="secretpatch"):
        engine = Engine.from_config({"webhook": {key: "x", "secretManagerTypes": ["GCP"]}})
    mentions = [w for w in engine.warnings if f"webhook.{key} is ignored" in w]
    assert len(mentions) == 1
    assert sum(f"webhook.{key} is ignored" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"group": "", "group_version": "1"}, "group is empty"),
        ({"group": "a", "group_version": ""}, "group_version is empty"),
        ({"group": "a", "group_version": "1", "mount_requirement": "ENV_VAR"}, "ENV_VAR is not supported"),
    ],
)
def test_refusals_name_the_secret_and_the_reason(
    engine: Engine, fields: dict[str, str], fragment: str
) -> None:
    with pytest.raises(Rejected) as caught:
        engine.mutate(flyte_pod({"group": "ok", "group_version": "1"}, fields))
    assert caught.value.annotation == "flyte.secrets/s1"
    assert caught.value.message.startswith("none of the secret managers injected secret [")
    assert "flyte.secrets/s1" in caught.value.message
    assert fragment in caught.value.message


def test_the_volume_is_added_once_and_an_existing_one_is_kept(engine: Engine) -> None:
    pod = flyte_pod({"group": "a", "group_version": "1"}, {"group": "b", "group_version": "1"})
    assert engine.mutate(pod).pod["spec"]["volumes"] == [
        {"name": "gcp-secret-vol", "emptyDir": {"medium": "Memory"}}
    ]
    mine = {"name": "gcp-secret-vol", "emptyDir": {}}
    pod["spec"]["volumes"] = [mine]
    assert engine.mutate(pod).pod["spec"]["volumes"] == [mine]


def test_init_container_index_counts_the_users_init_containers(engine: Engine) -> None:
    pod = flyte_pod({"group": "a", "group_version": "1"}, {"group": "b", "group_version": "1"})
    pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
    names = [c["name"] for c in engine.mutate(pod).pod["spec"]["initContainers"]]
    assert names == ["setup", "gcp-pull-secret-1", "gcp-pull-secret-2"]


def test_every_container_gets_a_read_only_mount_and_the_puller_keeps_its_read_write_one(
    engine: Engine,
) -> None:
    containers = [
        {"name": "a", "image": "x"},
        {"name": "b", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
    ]
    pod = flyte_pod(
        {"group": "s", "group_version": "1"},
        containers=containers,
        initContainers=[{"name": "i", "image": "x"}],
    )
    spec = engine.mutate(pod).pod["spec"]
    read_only = {"name": "gcp-secret-vol", "readOnly": True, "mountPath": "/etc/flyte/secrets"}
    assert spec["containers"][0]["volumeMounts"] == [read_only]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "data", "mountPath": "/d"}, read_only]
    assert spec["initContainers"][0]["volumeMounts"] == [read_only]
    assert spec["initContainers"][1]["volumeMounts"] == [
        {"name": "gcp-secret-vol", "mountPath": "/etc/flyte/secrets"}
    ]


def test_env_vars_go_first_replacing_the_first_of_the_same_name(engine: Engine) -> None:
    env = [
        {"name": "A", "value": "1"},
        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/old"},
        {"name": "B", "value": "2"},
        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/older"},
    ]
    pod = flyte_pod(
        {"group": "s", "group_version": "1"}, containers=[{"name": "c", "image": "x", "env": env}]
    )
    result = engine.mutate(pod).pod["spec"]["containers"][0]["env"]
    assert result == [
        {"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""},
        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/etc/flyte/secrets"},
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/older"},
    ]


def test_a_full_resource_name_goes_into_both_gcloud_forms(engine: Engine) -> None:
    group = "projects/my-project/secrets/Db_Password"
    mutation = engine.mutate(flyte_pod({"group": group, "group_version": "3"}))
    line = mutation.pod["spec"]["initContainers"][0]["command"][2]
    path = "/etc/flyte/secrets/projects/my-project/secrets/db_password/3"
    assert line == (
        f"gcloud secrets versions access {group}/versions/3 --out-file={path} || "
        f"gcloud secrets versions access 3 --secret={group} --out-file={path}; "
        f"chmod +rX /etc/flyte/secrets/projects/my-project/secrets/db_password {path}"
    )


@pytest.mark.parametrize(
    ("group", "version"), [("TestSecret", "2"), ("projects/p-12345/secrets/X", "latest"), ("a", "Prod_Alias")]
)
def test_the_file_lands_where_flytekit_reads_it(engine: Engine, group: str, version: str) -> None:
    mutation = engine.mutate(flyte_pod({"group": group, "group_version": version}))
    spec = mutation.pod["spec"]
    env = {v["name"]: v["value"] for v in spec["containers"][0]["env"]}
    flytekit_path = "/".join(
        [env["FLYTE_SECRETS_DEFAULT_DIR"], group.lower(), env["FLYTE_SECRETS_FILE_PREFIX"] + version.lower()]
    )
    assert f"--out-file={flytekit_path} " in spec["initContainers"][0]["command"][2]


def test_many_secrets_match_the_reference(engine: Engine) -> None:
    requests = [Req("a", "1"), Req("projects/p-12345/secrets/b", "latest"), Req("C", "alias-1")]
    pod = flyte_pod(*({"group": r.group, "group_version": r.group_version} for r in requests))
    pod["spec"]["initContainers"] = [
        {"name": "user", "image": "x", "env": [{"name": "FLYTE_SECRETS_FILE_PREFIX", "value": "p"}]}
    ]
    assert engine.mutate(pod).pod == reference_mutate(pod, requests)


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_reviews_are_answered_in_the_version_asked(engine: Engine, api_version: str) -> None:
    pod = flyte_pod({"group": "a", "group_version": "1"})
    review = admission_review(pod, uid="u-1", api_version=api_version)
    answer = engine.review(review)
    assert answer["apiVersion"] == api_version
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "u-1"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == engine.mutate(pod).patch
    assert response["status"] == {"code": 200}  # as controller-runtime sends a patched answer


def test_a_pod_needing_no_change_is_allowed_without_a_patch(engine: Engine) -> None:
    review = admission_review(flyte_pod(), uid="u-2")
    assert engine.review(review)["response"] == {
        "uid": "u-2",
        "allowed": True,
        "status": {"code": 200, "message": "No changes"},
    }


def test_a_refused_secret_is_denied_with_400_and_flytes_message(engine: Engine) -> None:
    pod = flyte_pod({"group": "a", "group_version": "1", "mount_requirement": "ENV_VAR"})
    review = admission_review(pod, uid="u-3")
    response = engine.review(review)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    secret = 'group:"a" group_version:"1" mount_requirement:ENV_VAR'
    assert response["status"]["message"].startswith(
        f"none of the secret managers injected secret [{secret}]: failed to inject secret [{secret}] "
        "using any of the enabled secret managers: [Global GCP]. Possible reasons: the secret cannot "
        "be found or an internal error occurred; reason: flyte.secrets/s0: mount_requirement ENV_VAR"
    ), "Flyte 2.0's text verbatim, then the reason"
    assert "patch" not in response


@pytest.mark.parametrize(
    ("webhook", "listed"),
    [
        ({"secretManagerTypes": ["gcp"]}, "[Global GCP]"),
        ({"secretManagerTypes": ["Global", "K8s", "GCP"]}, "[Global Global K8s GCP]"),
        ({"secretManagerType": "GCP"}, "[Global GCP]"),
    ],
)
def test_the_denial_lists_the_managers_as_flyte_does(webhook: dict[str, Any], listed: str) -> None:
    """Global first, always (twice when the config names it too), then the configured ones
    in Flyte's spelling."""
    engine = Engine.from_config({"webhook": webhook})
    with pytest.raises(Rejected) as caught:
        engine.mutate(flyte_pod({"group": "a", "group_version": ""}))
    assert f"using any of the enabled secret managers: {listed}. Possible reasons" in caught.value.message


@pytest.mark.parametrize("page", ["README.md", "docs/flyte-parity.md"])
def test_the_refusal_the_docs_show_is_the_one_secretpatch_writes(engine: Engine, page: str) -> None:
    text = (ROOT / page).read_text()
    shown = [line for line in text.splitlines() if line.startswith("none of the secret managers")]
    with pytest.raises(Rejected) as caught:
        engine.mutate(flyte_pod({"group": "a;reboot", "group_version": "1"}))
    assert shown == [caught.value.message]


@pytest.mark.parametrize(
    "key", ["certDir", "listenPort", "serviceName", "servicePort", "secretName", "namespaceSelector"]
)
def test_flytes_server_keys_are_accepted_without_a_warning(key: str) -> None:
    """serve, webhook-config and manifests read these as Flyte does."""
    engine = Engine.from_config({"webhook": {key: "x", "secretManagerTypes": ["GCP"]}})
    assert engine.warnings == ()
    assert engine.config.flyte(key, None) == "x"


def test_key_files_is_an_opt_in_that_leaves_flytes_line_alone_by_default(engine: Engine) -> None:
    keyed = flyte_pod({"group": "creds", "group_version": "3", "key": "Token"})
    default_line = engine.mutate(keyed).pod["spec"]["initContainers"][0]["command"][2]
    assert default_line == gcloud_line("creds", "3")
    opted = Engine.from_config({"secretpatch": {"values": {"gcp": {"keyFiles": True}}}})
    line = opted.mutate(keyed).pod["spec"]["initContainers"][0]["command"][2]
    assert line == (
        "gcloud secrets versions access creds/versions/3 --out-file=/etc/flyte/secrets/creds/3/token || "
        "gcloud secrets versions access 3 --secret=creds --out-file=/etc/flyte/secrets/creds/3/token; "
        "chmod +rX /etc/flyte/secrets/creds /etc/flyte/secrets/creds/3 /etc/flyte/secrets/creds/3/token"
    )
    unkeyed = flyte_pod({"group": "creds", "group_version": "3"})
    assert opted.mutate(unkeyed).pod["spec"]["initContainers"][0]["command"][2] == gcloud_line("creds", "3")
