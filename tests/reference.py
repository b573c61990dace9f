"""Flyte's GCP mutation written out imperatively from docs/flyte-parity.md, as a reference.

It shares no code with the engine: if the engine's rules, templates or patch composer drift
from Flyte's behaviour, the property tests that compare the two fail.
"""

from __future__ import annotations

import copy
import functools
import posixpath
from dataclasses import dataclass
from typing import Any

MOUNT_PATH = "/etc/flyte/secrets"
VOLUME = "gcp-secret-vol"
DEFAULT_IMAGE = "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"
DEFAULT_RESOURCES = {
    "requests": {"cpu": "200m", "memory": "500Mi"},
    "limits": {"cpu": "200m", "memory": "500Mi"},
}


@dataclass(frozen=True)
class Req:
    group: str
    group_version: str
    key: str = ""
    mount_requirement: str = "ANY"
    annotation: str = ""  # flyte.secrets/sN, named by a failing batched fetch


class RefRejected(Exception):
    pass


def go_join(*parts: str) -> str:
    """Go's filepath.Join: join the non-empty parts with '/', then Clean."""
    joined = "/".join(p for p in parts if p)
    return posixpath.normpath(joined) if joined else ""


def file_path(group: str, version: str, key: str = "", *, flyte2: bool = False) -> str:
    """Where the secret's file lands: <group>/<version>, or <group>/<key> (Flyte 2)."""
    secret_dir = go_join(MOUNT_PATH, group).lower()
    if flyte2 and not version:
        return go_join(secret_dir, key).lower()
    return go_join(secret_dir, version).lower()


def gcloud_line(group: str, version: str, key: str = "", *, flyte2: bool = False) -> str:
    secret_dir = go_join(MOUNT_PATH, group).lower()
    secret_path = file_path(group, version, key, flyte2=flyte2)
    if flyte2 and not version:  # a Flyte 2 request: the latest version, into <group>/<key> or <key>
        group, version = group or key, "latest"
    regional = group.split("/")
    if len(regional) == 6 and regional[2] == "locations":  # gcloud needs --location for these
        _, project, _, location, _, name = regional
        return (
            f"gcloud secrets versions access {version} --secret={name} --project={project} "
            f"--location={location} --out-file={secret_path}; chmod +rX {secret_dir} {secret_path}"
        )
    return (
        f"gcloud secrets versions access {group}/versions/{version} --out-file={secret_path} || "
        f"gcloud secrets versions access {version} --secret={group} --out-file={secret_path}; "
        f"chmod +rX {secret_dir} {secret_path}"
    )


def _prepend_env(container: dict[str, Any], name: str, value: str) -> None:
    env = container.get("env") or []
    for i, var in enumerate(env):
        if var.get("name") == name:
            del env[i]
            break
    env.insert(0, {"name": name, "value": value})
    container["env"] = env


def _append_env_if_absent(container: dict[str, Any], name: str, value: str) -> None:
    """Flyte 1.16: append unless the container already has a variable of that name."""
    env = container.get("env") or []
    if not any(var.get("name") == name for var in env):
        env.append({"name": name, "value": value})
    container["env"] = env


def reference_mutate(
    pod: dict[str, Any],
    requests: list[Req],
    image: str = DEFAULT_IMAGE,
    resources: dict[str, Any] | None = None,
    flyte: str = "v2",
    *,
    flyte2_requests: bool = False,
    batched: int | None = None,
) -> dict[str, Any]:
    """The pod as Flyte 2.0 (`flyte="v2"`) or 1.16 (`"v1"`) mutates it; with
    `flyte2_requests`, taking the requests of Flyte 2's SDK too. With `batched` (the
    concurrency), secretpatch's `fetch: batched`: the same pod, but the first init container
    added runs every gcloud line, `batched` at a time, and the others are not added.

    A pod that already carries these init containers (secretpatch's re-invocation, not
    Flyte's) gets none: only the volume, mounts and env that any container lacks."""
    add_env = _prepend_env if flyte == "v2" else _append_env_if_absent
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    first = len(spec.get("initContainers") or [])
    fetchers = functools.partial(
        _fetchers, requests, image, resources, flyte2_requests=flyte2_requests, batched=batched
    )
    carried = any(v.get("name") == VOLUME for v in spec.get("volumes") or []) and any(
        _holds(spec["initContainers"], position, fetchers(position))
        for position in range(max(first - REPLAY_WINDOW, 0), first)
    )
    for req in requests:
        if not flyte2_requests and (not req.group or not req.group_version):
            raise RefRejected("group and group_version are required")
        if req.mount_requirement == "ENV_VAR":
            raise RefRejected("ENV_VAR")
        volumes = spec.get("volumes") or []
        if not any(v.get("name") == VOLUME for v in volumes):
            volumes.append({"name": VOLUME, "emptyDir": {"medium": "Memory"}})
        spec["volumes"] = volumes
        inits = spec.get("initContainers") or []
        if not carried:
            inits.append(_fetcher(len(inits), req, image, resources, flyte2_requests))
        spec["initContainers"] = inits
        containers = spec.get("containers") or []
        for container in inits + containers:
            mounts = container.get("volumeMounts") or []
            if not any(m.get("name") == VOLUME for m in mounts):
                mounts.append({"name": VOLUME, "readOnly": True, "mountPath": MOUNT_PATH})
            container["volumeMounts"] = mounts
        for name, value in (("FLYTE_SECRETS_DEFAULT_DIR", MOUNT_PATH), ("FLYTE_SECRETS_FILE_PREFIX", "")):
            for container in inits + containers:
                add_env(container, name, value)
    if batched is not None and requests and not carried:
        inits = spec["initContainers"]
        lines = [init["command"][2] for init in inits[first:]]
        names = [f"{req.annotation} ({req.group}/{req.group_version})" for req in requests]
        paths = [file_path(req.group, req.group_version, req.key, flyte2=flyte2_requests) for req in requests]
        inits[first]["command"][2] = batched_script(lines, names, paths, batched)
        del inits[first + 1 :]
    return pod


REPLAY_WINDOW = 16  # how far from the end secretpatch looks for the init containers it added


def _fetcher(index: int, req: Req, image: str, resources: Any, flyte2_requests: bool) -> dict[str, Any]:
    return {
        "name": f"gcp-pull-secret-{index}",
        "image": image,
        "command": ["sh", "-ec", gcloud_line(req.group, req.group_version, req.key, flyte2=flyte2_requests)],
        "volumeMounts": [{"name": VOLUME, "mountPath": MOUNT_PATH}],
        # requests or limits given replace that map of the default only
        "resources": copy.deepcopy({**DEFAULT_RESOURCES, **(resources or {})}),
    }


def _fetchers(
    requests: list[Req],
    image: str,
    resources: Any,
    start: int,
    *,
    flyte2_requests: bool,
    batched: int | None,
) -> list[dict[str, Any]]:
    """The init containers a first patch adds from position `start`, as written then."""
    each = [_fetcher(start + n, req, image, resources, flyte2_requests) for n, req in enumerate(requests)]
    if batched is None or not each:
        return each
    names = [f"{req.annotation} ({req.group}/{req.group_version})" for req in requests]
    paths = [file_path(req.group, req.group_version, req.key, flyte2=flyte2_requests) for req in requests]
    each[0]["command"][2] = batched_script([f["command"][2] for f in each], names, paths, batched)
    return each[:1]


def _holds(inits: list[dict[str, Any]], start: int, fetchers: list[dict[str, Any]]) -> bool:
    """Whether the init containers from `start` are `fetchers`, each field as written (later
    fields, such as the env a first patch adds, are not compared)."""
    return start + len(fetchers) <= len(inits) and all(
        all(inits[start + n].get(key) == value for key, value in fetcher.items())
        for n, fetcher in enumerate(fetchers)
    )


def batched_script(lines: list[str], names: list[str], paths: list[str], concurrency: int) -> str:
    """The shell script of `fetch: batched`: the lines of one path as one job, in order
    (jobs in order of their paths), `concurrency` jobs at a time; each line as a background
    job waited for, its failure named (names hold no quote); any failure fails the script."""
    jobs: dict[str, list[int]] = {}
    for n, path in enumerate(paths):
        jobs.setdefault(path, []).append(n)
    ordered = [jobs[path] for path in sorted(jobs)]
    script = ["failed=0"]
    for start in range(0, len(ordered), concurrency):
        wave = ordered[start : start + concurrency]
        for number, job in enumerate(wave):
            members = "".join(
                f" ( {lines[n]} ) & wait \"$!\" || {{ f=1; printf '%s\\n' "
                f"'secretpatch: could not fetch {names[n]}' >&2; }};"
                for n in job
            )
            script.append(f'( f=0;{members} exit "$f" ) & p{number}=$!')
        script += [f'wait "$p{number}" || failed=1' for number in range(len(wave))]
    script.append(
        "if [ \"$failed\" -ne 0 ]; then printf '%s\\n' "
        "'secretpatch: not every secret could be fetched; each is named above' >&2; exit 1; fi"
    )
    return "\n".join(script)
