"""The pod really starts: rendered init containers run with `sh -ec` in a private mount
namespace, against a stand-in gcloud (tests/podstart/gcloud), and the task's non-root user
reads each secret where flytekit looks. Needs root and mount namespaces; CI runs as root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from secretpatch import Engine

from .conftest import flyte_pod
from .podstart.harness import install_gcloud, run_plan

PROJECT = "cluster-project"


def _namespaces_work() -> str | None:
    if os.geteuid() != 0:
        return "needs root to mount a memory filesystem in a private mount namespace"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare --mount is not permitted here: {probe.stderr.strip()}"
    return None


pytestmark = pytest.mark.skipif(_namespaces_work() is not None, reason=_namespaces_work() or "")

STORE = {
    "projects/cluster-project/secrets/alpha": {"versions": {"1": "lower"}},
    "projects/cluster-project/secrets/Alpha": {"versions": {"1": "upper"}},
    "projects/cluster-project/secrets/multi-line": {"versions": {"1": "line one\nline two\n"}},
    "projects/cluster-project/secrets/quoted": {"versions": {"1": "it's"}},
    "projects/cluster-project/secrets/empty": {"versions": {"1": ""}},
    "projects/cluster-project/secrets/huge": {"versions": {"1": "x" * 32769}},
    "projects/cluster-project/secrets/just-fits": {"versions": {"1": "y" * 32768}},
    "projects/cluster-project/secrets/crlf": {"versions": {"1": "a\r\nb"}},
    "projects/cluster-project/secrets/nul": {"versions": {"1": "a\u0000b"}},
    "projects/cluster-project/secrets/hash-and-spaces": {"versions": {"1": "  # not a comment = x  "}},
    "projects/cluster-project/secrets/openai-key": {"versions": {"1": "sk-1", "2": "sk-2"}},
    f"projects/{PROJECT}/secrets/TestSecret": {"versions": {"1": "old", "2": "s3cr3t-v2\n"}},
    f"projects/{PROJECT}/secrets/db-password": {
        "versions": {"1": "hunter1", "3": "hunter3"},
        "aliases": {"prod": "3"},
    },
    "projects/shared-secrets/secrets/Signing_Key": {"versions": {"7": "-----BEGIN KEY-----"}},
    "projects/shared-secrets/locations/us-central1/secrets/Regional_Key": {
        "versions": {"2": "regional-v2", "3": "regional-v3"},
        "aliases": {"prod": "2"},
    },
    f"projects/{PROJECT}/secrets/forbidden": {"versions": {"1": "x"}, "denied": True},
    f"projects/{PROJECT}/secrets/api-token": {"versions": {"1": "t1", "4": "t4"}},
}


def start_pod(
    tmp_path: Path,
    requests: list[dict[str, str]],
    config: dict[str, Any] | None = None,
    read_at: dict[str, str] | None = None,
    *,
    gcloud_env: dict[str, str] | None = None,
    reinvoke_after: Any = None,
    **pod_spec: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Start the pod; the task reads each secret where flytekit looks for it, or at `read_at`
    (name -> path under FLYTE_SECRETS_DEFAULT_DIR) where another runtime does. `gcloud_env`
    is given to the init containers (the stand-in gcloud's FAKE_GCLOUD_* settings). With
    `reinvoke_after`, a function that changes the mutated pod as another webhook would, the
    pod is reviewed again after it (reinvocationPolicy: IfNeeded)."""
    engine = Engine.from_config(config)
    pod = engine.mutate(flyte_pod(*requests, **pod_spec)).pod
    if reinvoke_after is not None:
        reinvoke_after(pod)
        pod = engine.mutate(pod).pod
    task = pod["spec"]["containers"][0]
    env = {var["name"]: var.get("value", "") for var in task["env"]}
    reads = {}
    if read_at is not None:
        reads = {name: f"{env['FLYTE_SECRETS_DEFAULT_DIR']}/{path}" for name, path in read_at.items()}
    for request in requests if read_at is None else []:
        # flytekit: join(DEFAULT_DIR, lower(group), lower(version)[, lower(key)]), prefix on the last part
        parts = [env["FLYTE_SECRETS_DEFAULT_DIR"], request["group"].lower(), request["group_version"].lower()]
        if request.get("key"):
            parts.append(request["key"].lower())
        parts[-1] = env["FLYTE_SECRETS_FILE_PREFIX"] + parts[-1]
        reads[f"{request['group']}/{request['group_version']}"] = "/".join(parts)
    store = tmp_path / "store.json"
    store.write_text(json.dumps(STORE))
    bin_dir = tmp_path / "bin"
    install_gcloud(bin_dir)
    for directory in (tmp_path, bin_dir):
        directory.chmod(0o755)
    store.chmod(0o644)
    plan = {
        "mount_path": pod["spec"]["initContainers"][-1]["volumeMounts"][0]["mountPath"],
        "init_containers": pod["spec"]["initContainers"],
        "reads": list(reads.values()),
        "bin": str(bin_dir),
        "store": str(store),
        "project": PROJECT,
        "env": gcloud_env or {},
        "containers": pod["spec"]["containers"],
        "volumes": {"gcp-secret-vol": pod["spec"]["initContainers"][-1]["volumeMounts"][0]["mountPath"]},
    }
    done = run_plan(plan, tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    return pod, results, reads


def test_every_secret_lands_where_flytekit_reads_it_and_the_task_user_can_read_it(tmp_path: Path) -> None:
    requests = [
        {"group": "TestSecret", "group_version": "2"},
        {"group": "db-password", "group_version": "latest"},
        {"group": "db-password", "group_version": "prod"},
        {"group": "projects/shared-secrets/secrets/Signing_Key", "group_version": "7"},
    ]
    _, results, reads = start_pod(tmp_path, requests)
    assert [c["code"] for c in results["init"]] == [0, 0, 0, 0], results["init"]
    assert {name: results["reads"][path] for name, path in reads.items()} == {
        "TestSecret/2": {"ok": True, "data": "s3cr3t-v2\n"},
        "db-password/latest": {"ok": True, "data": "hunter3"},
        "db-password/prod": {"ok": True, "data": "hunter3"},
        "projects/shared-secrets/secrets/Signing_Key/7": {"ok": True, "data": "-----BEGIN KEY-----"},
    }
    modes = results["modes"]
    assert (
        modes["/etc/flyte/secrets/testsecret"] == "0o755"
        and modes["/etc/flyte/secrets/testsecret/2"] == "0o644"
    )
    assert modes["/etc/flyte/secrets/projects"] == "0o755", "intermediate directories keep the default mode"
    assert modes["/etc/flyte/secrets/projects/shared-secrets/secrets/signing_key"] == "0o755"


def test_a_bare_name_is_fetched_by_the_fallback_and_a_full_name_by_the_first_form(tmp_path: Path) -> None:
    _, results, _ = start_pod(
        tmp_path,
        [
            {"group": "TestSecret", "group_version": "2"},
            {"group": "projects/shared-secrets/secrets/Signing_Key", "group_version": "7"},
        ],
    )
    bare, full = results["init"]
    assert "Failed to find attribute [secret]" in bare["stderr"], "the first form must fail for a bare name"
    assert bare["code"] == 0
    assert full["stderr"] == "" and full["code"] == 0


def test_flyte_2_requests_read_the_latest_version_where_flyte_2_puts_secret_files(tmp_path: Path) -> None:
    """flyte.Secret(key="api-token", mount=...) and flyte.Secret(key="x", group="db-password"):
    no version, so the latest; a key without a group names the secret."""
    _, results, reads = start_pod(
        tmp_path,
        [
            {"key": "api-token", "mount_requirement": "FILE"},
            {"group": "db-password", "key": "primary", "mount_requirement": "FILE"},
        ],
        config={"secretpatch": {"values": {"gcp": {"flyte2Requests": True}}}},
        read_at={"api-token": "api-token", "db-password": "db-password/primary"},
    )
    assert [init["code"] for init in results["init"]] == [0, 0]
    assert results["reads"][reads["api-token"]] == {"ok": True, "data": "t4"}
    assert results["reads"][reads["db-password"]] == {"ok": True, "data": "hunter3"}


@pytest.mark.parametrize("version", ["3", "latest", "prod"])
def test_a_regional_secret_is_fetched_with_its_location_and_lands_where_flytekit_reads_it(
    tmp_path: Path, version: str
) -> None:
    group = "projects/shared-secrets/locations/us-central1/secrets/Regional_Key"
    _, results, reads = start_pod(tmp_path, [{"group": group, "group_version": version}])
    (fetch,) = results["init"]
    assert fetch["code"] == 0 and fetch["stderr"] == ""
    read = results["reads"][reads[f"{group}/{version}"]]
    expected = {"3": "regional-v3", "latest": "regional-v3", "prod": "regional-v2"}[version]
    assert read["ok"] is True and read["data"] == expected


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"group": "missing", "group_version": "1"},
            "NOT_FOUND: Secret Version [projects/cluster-project/secrets/missing/versions/1] not found.",
        ),
        (
            {"group": "forbidden", "group_version": "1"},
            "PERMISSION_DENIED: Permission 'secretmanager.versions.access' denied",
        ),
        (
            {"group": "TestSecret", "group_version": "9"},
            "NOT_FOUND: Secret Version [projects/cluster-project/secrets/TestSecret/versions/9] not found.",
        ),
    ],
)
def test_a_failing_fetch_fails_the_init_container_with_the_message_and_stops_the_pod(
    tmp_path: Path, request_: dict[str, str], message: str
) -> None:
    _, results, reads = start_pod(tmp_path, [request_, {"group": "TestSecret", "group_version": "2"}])
    assert len(results["init"]) == 1, "kubelet starts no later init container after a failure"
    failed = results["init"][0]
    assert failed["code"] != 0
    assert message in failed["stderr"]
    first = next(iter(reads.values()))
    assert results["reads"][first]["ok"] is False


def test_user_init_containers_and_several_containers_see_the_same_files(tmp_path: Path) -> None:
    pod, results, reads = start_pod(
        tmp_path,
        [{"group": "db-password", "group_version": "1"}],
        initContainers=[{"name": "setup", "image": "busybox", "command": ["sh", "-ec", "true"]}],
        containers=[{"name": "main", "image": "x"}, {"name": "sidecar", "image": "y"}],
    )
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["setup", "gcp-pull-secret-1"]
    assert [c["code"] for c in results["init"]] == [0, 0]
    assert results["reads"][reads["db-password/1"]] == {"ok": True, "data": "hunter1"}
    for container in pod["spec"]["containers"]:
        assert {"name": "gcp-secret-vol", "readOnly": True, "mountPath": "/etc/flyte/secrets"} in container[
            "volumeMounts"
        ]


def test_with_key_files_a_keyed_secret_lands_where_flytekit_reads_it(tmp_path: Path) -> None:
    """Flyte writes <group>/<version> whatever the key, so flytekit never finds a keyed secret;
    the opt-in keyFiles value writes <group>/<version>/<key>."""
    requests = [
        {"group": "db-password", "group_version": "3", "key": "Password"},
        {"group": "TestSecret", "group_version": "2"},
    ]
    _, results, reads = start_pod(
        tmp_path, requests, config={"secretpatch": {"values": {"gcp": {"keyFiles": True}}}}
    )
    assert [c["code"] for c in results["init"]] == [0, 0]
    assert results["reads"][reads["db-password/3"]] == {"ok": True, "data": "hunter3"}
    assert reads["db-password/3"] == "/etc/flyte/secrets/db-password/3/password"
    assert results["modes"]["/etc/flyte/secrets/db-password/3"] == "0o755"
    assert results["reads"][reads["TestSecret/2"]] == {"ok": True, "data": "s3cr3t-v2\n"}


def test_without_key_files_a_keyed_secret_is_where_flyte_puts_it_and_flytekit_misses_it(
    tmp_path: Path,
) -> None:
    _, results, reads = start_pod(
        tmp_path, [{"group": "db-password", "group_version": "3", "key": "password"}]
    )
    assert results["init"][0]["code"] == 0
    assert results["reads"][reads["db-password/3"]]["ok"] is False
    assert "/etc/flyte/secrets/db-password/3" in results["modes"]


BATCHED = {"secretpatch": {"values": {"gcp": {"fetch": "batched"}}}}


def gcloud_calls(log: Path) -> tuple[int, int, int]:
    """From the stand-in's FAKE_GCLOUD_LOG: how many gcloud processes ran at once at most, how
    many started and how many ended (at one instant, an end counts before a start)."""
    events = sorted(
        (float(at), kind == "start") for kind, at in (line.split() for line in log.read_text().splitlines())
    )
    running = most = 0
    for _, start in events:
        running += 1 if start else -1
        most = max(most, running)
    starts = sum(start for _, start in events)
    return most, starts, len(events) - starts


EVERY_KIND = [
    {"group": "TestSecret", "group_version": "2"},
    {"group": "db-password", "group_version": "latest"},
    {"group": "db-password", "group_version": "prod"},
    {"group": "projects/shared-secrets/secrets/Signing_Key", "group_version": "7"},
    {"group": "projects/shared-secrets/locations/us-central1/secrets/Regional_Key", "group_version": "prod"},
    {"group": "api-token", "group_version": "1"},
]


def test_a_batched_fetch_puts_every_secret_where_per_secret_fetches_do_with_one_init_container(
    tmp_path: Path,
) -> None:
    (tmp_path / "batched").mkdir()
    (tmp_path / "per-secret").mkdir()
    batched_pod, batched, reads = start_pod(tmp_path / "batched", EVERY_KIND, config=BATCHED)
    per_secret_pod, per_secret, _ = start_pod(tmp_path / "per-secret", EVERY_KIND)
    assert [c["name"] for c in batched_pod["spec"]["initContainers"]] == ["gcp-pull-secret-0"]
    assert len(per_secret_pod["spec"]["initContainers"]) == len(EVERY_KIND)
    assert [c["code"] for c in batched["init"]] == [0]
    assert batched["reads"] == per_secret["reads"]
    assert all(read["ok"] for read in batched["reads"].values()), batched["reads"]
    assert batched["reads"][
        reads["projects/shared-secrets/locations/us-central1/secrets/Regional_Key/prod"]
    ] == {
        "ok": True,
        "data": "regional-v2",
    }
    assert batched["modes"] == per_secret["modes"], "same files, same directories, same modes"


def test_a_batched_fetch_fetches_every_secret_then_fails_naming_each_one_it_could_not_fetch(
    tmp_path: Path,
) -> None:
    requests = [
        {"group": "missing", "group_version": "1"},
        {"group": "TestSecret", "group_version": "2"},
        {"group": "forbidden", "group_version": "1"},
        {"group": "db-password", "group_version": "1"},
        {"group": "api-token", "group_version": "4"},
    ]
    _, results, reads = start_pod(tmp_path, requests, config=BATCHED)
    (fetch,) = results["init"]
    assert fetch["code"] == 1
    stderr = fetch["stderr"]
    assert (
        "NOT_FOUND: Secret Version [projects/cluster-project/secrets/missing/versions/1] not found." in stderr
    )
    assert "PERMISSION_DENIED: Permission 'secretmanager.versions.access' denied" in stderr
    assert "secretpatch: could not fetch flyte.secrets/s0 (missing/1)\n" in stderr
    assert "secretpatch: could not fetch flyte.secrets/s2 (forbidden/1)\n" in stderr
    assert stderr.count("secretpatch: could not fetch") == 2
    assert stderr.endswith("secretpatch: not every secret could be fetched; each is named above\n")
    # The others were fetched, in the same waves; the pod stops at the failed init container.
    assert results["reads"][reads["api-token/4"]] == {"ok": True, "data": "t4"}
    assert results["reads"][reads["missing/1"]]["ok"] is False


@pytest.mark.parametrize(("secrets", "concurrency", "overlap"), [(6, 4, 4), (3, 4, 3), (5, 1, 1)])
def test_a_batched_fetch_runs_at_most_fetch_concurrency_gcloud_processes_at_once(
    tmp_path: Path, secrets: int, concurrency: int, overlap: int
) -> None:
    """The stand-in logs when each gcloud starts and ends; with a second of latency each, the
    fetches of a wave overlap and no more than fetchConcurrency run at once."""
    log = tmp_path / "gcloud.log"
    distinct = [("TestSecret", "1"), ("TestSecret", "2"), ("db-password", "1"), ("db-password", "3")]
    distinct += [("api-token", "1"), ("api-token", "4")]
    requests = [{"group": group, "group_version": version} for group, version in distinct[:secrets]]
    config = {"secretpatch": {"values": {"gcp": {"fetch": "batched", "fetchConcurrency": concurrency}}}}
    _, results, _ = start_pod(
        tmp_path,
        requests,
        config=config,
        gcloud_env={"FAKE_GCLOUD_LOG": str(log), "FAKE_GCLOUD_LATENCY": "0.5"},
    )
    assert [c["code"] for c in results["init"]] == [0], results["init"]
    most, started, ended = gcloud_calls(log)
    assert most == overlap
    assert started == ended == 2 * secrets, "each request's first form fails, then --secret"


def add_sidecars(pod: dict[str, Any]) -> None:
    """What a mesh's injector does after secretpatch: an init container and a sidecar."""
    pod["spec"]["initContainers"].append(
        {"name": "mesh-init", "image": "mesh", "command": ["sh", "-ec", "true"]}
    )
    pod["spec"]["containers"].append({"name": "mesh-proxy", "image": "mesh"})


@pytest.mark.parametrize("config", [None, BATCHED])
def test_a_pod_reviewed_again_after_another_webhook_fetches_each_secret_once(
    tmp_path: Path, config: dict[str, Any] | None
) -> None:
    log = tmp_path / "gcloud.log"
    requests = [{"group": "TestSecret", "group_version": "2"}, {"group": "db-password", "group_version": "3"}]
    pod, results, reads = start_pod(
        tmp_path,
        requests,
        config=config,
        gcloud_env={"FAKE_GCLOUD_LOG": str(log)},
        reinvoke_after=add_sidecars,
    )
    fetchers = [c["name"] for c in pod["spec"]["initContainers"] if c["name"].startswith("gcp-pull-secret-")]
    assert len(fetchers) == (1 if config else 2)
    assert [c["code"] for c in results["init"]] == [0] * (len(fetchers) + 1)
    assert log.read_text().count("start") == 2 * len(requests), (
        "each secret fetched once (bare IDs: two calls)"
    )
    assert results["reads"][reads["TestSecret/2"]] == {"ok": True, "data": "s3cr3t-v2\n"}
    assert results["reads"][reads["db-password/3"]] == {"ok": True, "data": "hunter3"}
    proxy = pod["spec"]["containers"][-1]
    assert {"name": "gcp-secret-vol", "readOnly": True, "mountPath": "/etc/flyte/secrets"} in proxy[
        "volumeMounts"
    ]


ENV_FILES = {"secretpatch": {"values": {"gcp": {"envVars": "fileKeyRef", "flyte2Requests": True}}}}


@pytest.mark.parametrize(
    "config",
    [
        ENV_FILES,
        {
            "secretpatch": {
                "values": {"gcp": {**ENV_FILES["secretpatch"]["values"]["gcp"], "fetch": "batched"}}
            }
        },
    ],
)
def test_each_container_gets_the_secret_in_its_environment_read_from_the_env_file(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    """The kubelet (emulated after 1.35's parser) reads each variable from the env file the
    fetcher wrote: the value exactly as stored, newlines and all; never in the pod spec."""
    requests = [
        {"group": "api-token", "group_version": "4", "mount_requirement": "ENV_VAR"},
        {"group": "db-password", "group_version": "prod", "env_var": "DB_PASS"},
        {
            "group": "TestSecret",
            "group_version": "2",
            "mount_requirement": "FILE",
            "env_var": "TEST_SECRET_PATH",
        },
        {"key": "openai-key", "mount_requirement": "ENV_VAR", "env_var": "OPENAI_API_KEY"},
        {"group": "multi-line", "group_version": "1", "env_var": "MULTI"},
        {"group": "hash-and-spaces", "group_version": "1", "env_var": "ODD"},
        {"group": "just-fits", "group_version": "1", "env_var": "BIG"},
    ]
    pod, results, _ = start_pod(
        tmp_path,
        requests,
        config=config,
        read_at={},
        containers=[{"name": "main", "image": "x"}, {"name": "side", "image": "y"}],
    )
    assert all(init["code"] == 0 for init in results["init"]), results["init"]
    for name in ("main", "side"):
        env = results["env"][name]
        assert env["_FSEC_API-TOKEN_4"] == "t4", "no env_var: where flytekit looks, _FSEC_GROUP_VERSION"
        assert env["DB_PASS"] == "hunter3"
        assert env["TEST_SECRET_PATH"] == "/etc/flyte/secrets/testsecret/2"
        assert env["OPENAI_API_KEY"] == "sk-2", "a Flyte 2 request: the latest version of its key"
        assert env["MULTI"] == "line one\nline two\n"
        assert env["ODD"] == "  # not a comment = x  ", "spaces, '#' and '=' inside the quotes are kept"
        assert env["BIG"] == "y" * 32768
    spec = json.dumps(pod)
    assert "hunter3" not in spec and "sk-2" not in spec, "no value is in the pod spec"


@pytest.mark.parametrize(
    ("group", "reason"),
    [
        ("quoted", "holds a single quote ('), which an env file cannot carry"),
        ("empty", "is empty, and Kubernetes reads an empty env-file value as no variable"),
        ("huge", "is over 32768 bytes"),
        ("crlf", "holds a carriage return or a NUL byte"),
        ("nul", "holds a carriage return or a NUL byte"),
    ],
)
def test_a_value_an_env_file_cannot_carry_fails_the_fetcher_naming_the_secret(
    tmp_path: Path, group: str, reason: str
) -> None:
    """Never a truncated or altered value: the fetcher fails, and the task does not start."""
    requests = [
        {"group": "TestSecret", "group_version": "2"},
        {"group": group, "group_version": "1", "env_var": "V"},
    ]
    _, results, _ = start_pod(tmp_path, requests, config=ENV_FILES, read_at={})
    fetch = results["init"][-1]
    assert fetch["code"] == 1
    assert f"secretpatch: flyte.secrets/s1 ({group}, version 1): the value {reason}" in fetch["stderr"]
    assert results["env"] == {}, "a failed init container: no container starts"


def test_secrets_of_one_path_are_fetched_one_after_another_as_per_secret_mode_does(tmp_path: Path) -> None:
    """alpha/1 and Alpha/1 are two secrets with one file (Flyte lower-cases paths): in one
    job, in the pod's order, so the file holds the second, as per-secret mode leaves it;
    concurrent writers would leave either, or a mix."""
    log = tmp_path / "gcloud.log"
    requests = [{"group": "Alpha", "group_version": "1"}, {"group": "alpha", "group_version": "1"}]
    _, results, _ = start_pod(
        tmp_path,
        requests,
        config=BATCHED,
        gcloud_env={"FAKE_GCLOUD_LOG": str(log), "FAKE_GCLOUD_LATENCY": "0.3"},
    )
    assert [c["code"] for c in results["init"]] == [0]
    assert results["reads"]["/etc/flyte/secrets/alpha/1"] == {"ok": True, "data": "lower"}
    most, _, _ = gcloud_calls(log)
    assert most == 1, "never two gcloud processes at once for one file"
