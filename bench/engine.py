"""Benchmark of Engine.review against two baselines run in the same process.

- diff: what Flyte and controller-runtime do: deep-copy the pod, mutate it, and build the
  JSONPatch by diffing (here with jsonpatch.make_patch).
- floor: parse and serialise the same AdmissionReview, and nothing else.

Every measurement includes parsing the request body and serialising the answer, as a server
must. "cold" gives every secret a name never seen before (no cache helps); "warm" repeats
the same review. Prints medians and p99s in microseconds and the ratios the targets are
stated in. Usage: python bench/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import copy
import gc
import json
import platform
import posixpath
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import yaml
from secretpatch import Engine
from secretpatch.secrets import encode_request, requested_secrets

ROOT = Path(__file__).resolve().parent.parent
MOUNT = "/etc/flyte/secrets"


def realistic_pod() -> dict[str, Any]:
    """The example task pod as the API server hands it to a mutating webhook on CREATE.

    By then the pod has been defaulted, the ServiceAccount and DefaultTolerationSeconds
    admission plugins have added the token volume, its mounts and two tolerations, and the
    field manager has recorded managedFields for FlytePropeller.
    """
    pod: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "pod.yaml").read_text())
    spec = pod["spec"]
    main = spec["containers"][0]
    main["env"] += [
        {"name": name, "value": value}
        for name, value in (
            ("FLYTE_ATTEMPT_NUMBER", "0"),
            ("FLYTE_INTERNAL_TASK_PROJECT", "flytesnacks"),
            ("FLYTE_INTERNAL_TASK_DOMAIN", "development"),
            ("FLYTE_INTERNAL_TASK_NAME", "workflows.example.say_hello"),
            ("FLYTE_INTERNAL_TASK_VERSION", "v3-7f3b9c2d"),
            ("FLYTE_INTERNAL_PROJECT", "flytesnacks"),
            ("FLYTE_INTERNAL_DOMAIN", "development"),
            ("FLYTE_INTERNAL_NAME", "workflows.example.say_hello"),
            ("FLYTE_INTERNAL_VERSION", "v3-7f3b9c2d"),
            ("FLYTE_AWS_ENDPOINT", "http://minio.flyte.svc.cluster.local:9000"),
            ("FLYTE_AWS_ACCESS_KEY_ID", "minio"),
            ("FLYTE_STATSD_HOST", "statsd.monitoring.svc.cluster.local"),
            ("PYTHONUNBUFFERED", "1"),
        )
    ]
    main.update(
        {
            "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
            "volumeMounts": [
                {
                    "name": "kube-api-access-4xq2m",
                    "readOnly": True,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                }
            ],
        }
    )
    spec.update(
        {
            "volumes": [
                {
                    "name": "kube-api-access-4xq2m",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                    },
                }
            ],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "flyte.org/node-role", "operator": "In", "values": ["worker"]}
                                ]
                            }
                        ]
                    }
                }
            },
        }
    )
    metadata = pod["metadata"]
    metadata["ownerReferences"] = [
        {
            "apiVersion": "flyte.lyft.com/v1alpha1",
            "kind": "flyteworkflow",
            "name": "ahvpkfmvnh8ltbpbvrwz",
            "uid": "3f4c1f0e-9a9b-4c1e-8a43-6f0e8d1b2a77",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    metadata["managedFields"] = [
        {
            "manager": "flytepropeller",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-11-28T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": _fields(
                    {k: v for k, v in metadata.items() if k in ("labels", "annotations", "ownerReferences")}
                ),
                "f:spec": _fields(spec),
            },
        }
    ]
    return pod


def _fields(value: Any) -> Any:
    """A fieldsV1 set, as the API server's field manager writes it."""
    if isinstance(value, dict):
        return {f"f:{key}": _fields(item) for key, item in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return {f'k:{{"name":"{v["name"]}"}}': {".": {}, **_fields(v)} for v in value}
    return {}


def review_for(pod: dict[str, Any], groups: list[str]) -> bytes:
    pod = copy.deepcopy(pod)
    annotations = {
        k: v for k, v in pod["metadata"]["annotations"].items() if not k.startswith("flyte.secrets/")
    }
    for i, group in enumerate(groups):
        annotations[f"flyte.secrets/s{i}"] = encode_request(
            f'group: "{group}"\ngroup_version: "{i % 7 + 1}"\n'
        )
    pod["metadata"]["annotations"] = annotations
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:flyte:flytepropeller",
                "uid": "0c5d",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:flyte", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    return json.dumps(review).encode()


def diff_baseline(body: bytes) -> bytes:
    """Deep copy, mutate as Flyte does, diff: the controller-runtime way."""
    review = json.loads(body)
    pod = review["request"]["object"]
    mutated = copy.deepcopy(pod)
    spec = mutated["spec"]
    for secret in requested_secrets(pod):
        volumes = spec.setdefault("volumes", [])
        if not any(v["name"] == "gcp-secret-vol" for v in volumes):
            volumes.append({"name": "gcp-secret-vol", "emptyDir": {"medium": "Memory"}})
        inits = spec.setdefault("initContainers", [])
        secret_dir = posixpath.join(MOUNT, secret.group).lower()
        path = posixpath.join(secret_dir, secret.group_version).lower()
        line = (
            f"gcloud secrets versions access {secret.group}/versions/{secret.group_version} --out-file={path} || "
            f"gcloud secrets versions access {secret.group_version} --secret={secret.group} --out-file={path}; "
            f"chmod +rX {secret_dir} {path}"
        )
        inits.append(
            {
                "name": f"gcp-pull-secret-{len(inits)}",
                "image": "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine",
                "command": ["sh", "-ec", line],
                "volumeMounts": [{"name": "gcp-secret-vol", "mountPath": MOUNT}],
                "resources": {
                    "requests": {"cpu": "200m", "memory": "500Mi"},
                    "limits": {"cpu": "200m", "memory": "500Mi"},
                },
            }
        )
        for container in inits + spec["containers"]:
            mounts = container.setdefault("volumeMounts", [])
            if not any(m["name"] == "gcp-secret-vol" for m in mounts):
                mounts.append({"name": "gcp-secret-vol", "readOnly": True, "mountPath": MOUNT})
        for name, value in (("FLYTE_SECRETS_DEFAULT_DIR", MOUNT), ("FLYTE_SECRETS_FILE_PREFIX", "")):
            for container in inits + spec["containers"]:
                env = container.setdefault("env", [])
                for i, var in enumerate(env):
                    if var["name"] == name:
                        del env[i]
                        break
                env.insert(0, {"name": name, "value": value})
    patch = jsonpatch.make_patch(pod, mutated).patch
    response = {
        "uid": review["request"]["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }
    return json.dumps(
        {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}
    ).encode()


def floor(body: bytes) -> bytes:
    return json.dumps(json.loads(body)).encode()


def measure(fns: list[Callable[[bytes], bytes]], bodies: list[bytes]) -> list[tuple[float, float]]:
    """Median and p99 of each function, interleaved body by body so that the machine's drift
    (this is a shared machine) affects every column alike. The cyclic GC is paused while
    timing; none of these functions creates cycles."""
    times: list[list[float]] = [[] for _ in fns]
    gc.collect()
    gc.disable()
    try:
        for body in bodies:
            for fn, bucket in zip(fns, times, strict=True):
                start = time.perf_counter_ns()
                fn(body)
                bucket.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    result = []
    for bucket in times:
        bucket.sort()
        result.append((statistics.median(bucket), bucket[min(len(bucket) - 1, int(len(bucket) * 0.99))]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args()
    engine = Engine.from_config(None)
    pod = realistic_pod()

    def ours(body: bytes) -> bytes:
        return json.dumps(engine.review(json.loads(body))).encode()

    print(
        f"secretpatch engine benchmark: Python {platform.python_version()}, {platform.machine()}, review body ~{len(review_for(pod, ['x'])) // 1024} KiB"
    )
    print("times in microseconds, median / p99\n")
    header = "| secrets | mode | secretpatch | diff baseline | JSON floor | diff / secretpatch | secretpatch / floor |"
    print(header)
    print("|---:|---|---:|---:|---:|---:|---:|")
    serial = 0
    medians: dict[tuple[int, str], float] = {}
    for count in (1, 10, 100):
        iterations = max(40, (60 if args.quick else 1000) // max(1, count // 10))
        for mode in ("cold", "warm"):
            if mode == "cold":
                bodies = []
                for _ in range(iterations):
                    bodies.append(review_for(pod, [f"secret-{serial + i}" for i in range(count)]))
                    serial += count
            else:
                body = review_for(pod, [f"warm-{i}" for i in range(count)])
                ours(body)
                bodies = [body] * iterations
            if mode == "warm":
                for fn in (ours, diff_baseline, floor):
                    for b in bodies[:10]:
                        fn(b)
            (ours_m, ours_p), (diff_m, diff_p), (floor_m, floor_p) = measure(
                [ours, diff_baseline, floor], bodies
            )
            medians[(count, mode)] = ours_m
            print(
                f"| {count} | {mode} | {ours_m:,.0f} / {ours_p:,.0f} | {diff_m:,.0f} / {diff_p:,.0f} | {floor_m:,.0f} / {floor_p:,.0f} "
                f"| {diff_m / ours_m:.1f}x | {ours_m / floor_m:.2f}x |"
            )
            sys.stdout.flush()
    for mode in ("cold", "warm"):
        low = (medians[(10, mode)] - medians[(1, mode)]) / 9
        high = (medians[(100, mode)] - medians[(10, mode)]) / 90
        print(
            f"\n{mode}: cost per added secret {low:,.1f} us (1 to 10 secrets), {high:,.1f} us (10 to 100 secrets)",
            end="",
        )
    print()


if __name__ == "__main__":
    main()
