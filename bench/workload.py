"""The workload both benchmarks use: Flyte task pods and AdmissionReviews as the API server
sends them to a mutating webhook."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from secretpatch.core.requests import encode_request

ROOT = Path(__file__).resolve().parent.parent


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


EXECUTION_ID = b"ahvpkfmvnh8ltbpbvrwz"  # examples/pod.yaml's execution, in pod names and env
TOKEN_SUFFIX = b"4xq2m"  # the service-account token volume's random suffix
REVIEW_UID = b"705ab4f5-6393-11e8-b7cc-42010a800002"


def sibling(body: bytes, n: int) -> bytes:
    """The review of another pod of the same task: another execution id (so other pod and
    owner names and env values), another token-volume suffix and another uid. Its shape is
    the same, and so is its length."""
    digest = hashlib.sha256(str(n).encode()).hexdigest().encode()
    uid = b"-".join((digest[20:28], digest[28:32], digest[32:36], digest[36:40], digest[40:52]))
    for old, new in ((EXECUTION_ID, digest[:20]), (TOKEN_SUFFIX, digest[52:57]), (REVIEW_UID, uid)):
        assert old in body and len(old) == len(new)
        body = body.replace(old, new)
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tree_cpu(pid: int) -> float:
    """CPU seconds (user+system) of a process and every process under it, live or reaped."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, p in parents.items() if p == parent and child not in tree]
        tree.update(children)
        frontier += children
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> set[int]:
    """`pid` and the processes under it, three levels down (a server, its review process)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree = {pid}
    for _ in range(3):
        tree |= {child for child, parent in parents.items() if parent in tree}
    return tree


def status_mib(pid: int, field: str) -> float:
    """A size from /proc/PID/status (VmRSS now, VmHWM the peak) in MiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mib(pid: int) -> float:
    """The peak RSS of a server and each process under it, added up: at least what the tree
    held at once, so what a container's memory limit would have seen, or a little more."""
    return sum(status_mib(member, "VmHWM") for member in process_tree(pid))


def run_wrk_script(
    url: str,
    connections: int,
    seconds: int,
    script: Path,
    *,
    pid: int,
    pin: list[str] | None = None,
    options: tuple[str, ...] = (),
) -> tuple[list[float], float]:
    """wrk, one thread, with a Lua script whose `done` prints one `RESULT` line: that line's
    numbers, and the CPU seconds the server (`pid` and every process under it) used meanwhile.
    `pin` runs wrk under taskset; `options` are more wrk flags."""
    before = tree_cpu(pid)
    output = subprocess.run(
        [*(pin or []), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *options, "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = tree_cpu(pid) - before
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return [float(x) for x in line.split()[1:]], cpu


def uvicorn_command(app: str, port: int | str, cert_dir: Path) -> list[str]:
    """uvicorn serving `app` (a bench/ module's "module:attribute") over TLS with the
    settings `secretpatch serve` uses (engine/webhook/run.py): uvloop, httptools, no access
    log, no proxy headers, no server header."""
    return [
        sys.executable, "-m", "uvicorn", app, "--app-dir", str(Path(__file__).resolve().parent),
        "--host", "127.0.0.1", "--port", str(port),
        "--ssl-certfile", str(cert_dir / "tls.crt"), "--ssl-keyfile", str(cert_dir / "tls.key"),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--no-proxy-headers", "--no-server-header",
    ]  # fmt: skip


def serve_command(port: int | str, cert_dir: Path, *options: str) -> list[str]:
    """`secretpatch serve` on loopback at `port` (or a "{port}" placeholder) with the
    certificates in `cert_dir`."""
    return [
        sys.executable, "-m", "secretpatch.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--cert-dir", str(cert_dir), *options,
    ]  # fmt: skip


def start_server(command: list[str], port: int, ca_file: Path) -> subprocess.Popen[bytes]:
    """Start a TLS server on loopback and wait until it completes a handshake (30 s at most)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(command[:4])} exited with {process.returncode}")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"nothing answers on port {port}")


def start_webhook(
    cert_dir: Path, *options: str, ca_file: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """`secretpatch serve` on a free loopback port with the certificates in `cert_dir`."""
    port = free_port()
    command = serve_command(port, cert_dir, *options)
    return start_server(command, port, ca_file or cert_dir / "ca.crt"), port
