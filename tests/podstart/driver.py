"""Runs a pod's init containers as the kubelet would, inside a private mount namespace.

Called by tests/test_pod_starts.py as `unshare --mount --propagation private python3
driver.py PLAN`. /etc is overlaid (so nothing is written to the host's /etc) and
/etc/flyte/secrets becomes a fresh memory filesystem, as the pod's emptyDir(medium: Memory)
is. The init containers run in order with `sh -ec`, as root, with their env and the stand-in
gcloud on PATH; the first that fails stops the pod. The plan's `container_start` (seconds,
default 0) is slept before each init container, as the kubelet's cost of starting one, and
`results["initialized"]` is the time from the first start to the moment the main container
could start (bench/podstart.py reports it).

Then each of the plan's `containers` gets its environment as the kubelet 1.35 makes it:
`value`s as they are, and `valueFrom.fileKeyRef` read from the env file on the secrets volume
with the kubelet's parser (parse_env below, after pkg/kubelet/util/env in 1.35: one
`KEY='value'` per variable, single quotes, no escapes, first occurrence wins, an empty value
counts as missing, a missing file fails even when optional). A container whose variable
cannot be resolved does not start: its error is reported as the kubelet's
CreateContainerConfigError message. Then, as an unprivileged user (like a
task container's), each file flytekit would read is read back. Prints the results as JSON.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

with open(sys.argv[1]) as plan_file:
    plan = json.load(plan_file)
scratch = tempfile.mkdtemp(prefix="podstart-")
os.makedirs(f"{scratch}/upper")
os.makedirs(f"{scratch}/work")
subprocess.run(
    [
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir=/etc,upperdir={scratch}/upper,workdir={scratch}/work",
        "/etc",
    ],
    check=True,
)
os.makedirs(plan["mount_path"], exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0777,size=16m", "tmpfs", plan["mount_path"]], check=True)

results = {"init": [], "reads": {}}
started = time.monotonic()
for container in plan["init_containers"]:
    time.sleep(plan.get("container_start", 0))
    env = {
        "PATH": f"{plan['bin']}:/usr/bin:/bin",
        "FAKE_GCLOUD_STORE": plan["store"],
        "FAKE_GCLOUD_PROJECT": plan["project"],
        **plan.get("env", {}),
    }
    env.update({var["name"]: var.get("value", "") for var in container.get("env", [])})
    done = subprocess.run(
        container["command"], env=env, capture_output=True, text=True, umask=0o022, check=False
    )
    results["init"].append({"name": container["name"], "code": done.returncode, "stderr": done.stderr})
    if done.returncode != 0:
        break
results["initialized"] = time.monotonic() - started


MAX_LINE = 64 * 1024  # Go's bufio.Scanner token limit, which the kubelet's parser keeps


class EnvFileError(Exception):
    pass


def scan_lines(data):
    """bufio.Scanner's lines: split at LF, one CR before it dropped, each under 64 KiB."""
    position = 0
    while position < len(data):
        newline = data.find(b"\n", position)
        end = len(data) if newline == -1 else newline
        if end - position >= MAX_LINE:
            raise EnvFileError("bufio.Scanner: token too long")
        line = data[position:end]
        yield line[:-1] if line.endswith(b"\r") else line
        position = len(data) if newline == -1 else newline + 1


def parse_env(data, key):
    """The value of `key` in an env file, b"" when it is not there."""
    lines = enumerate(scan_lines(data), 1)
    for first, raw in lines:
        number, line = first, raw.lstrip(b" \t")
        if not line or line.startswith(b"#"):
            continue
        equals = line.find(b"=")
        if equals == -1:
            raise EnvFileError(f"line {number}: missing '='")
        name = line[:equals].rstrip(b" \t")
        if not name or name != line[:equals]:
            raise EnvFileError(f"line {number}: bad variable name")
        value = line[equals + 1 :]
        if value.lstrip(b" \t") != value:
            if name == key:
                return b""
            continue
        if not value.startswith(b"'"):
            raise EnvFileError(f"line {number}: value must be enclosed in single quotes")
        parts, rest, start = [], value[1:], first
        while True:
            quote = rest.find(b"'")
            if quote != -1:
                parts.append(rest[:quote])
                after = rest[quote + 1 :].lstrip(b" \t")
                if after and not after.startswith(b"#"):
                    raise EnvFileError(f"line {number}: unexpected content after closing quote")
                if name == key:
                    return b"".join(parts)
                break
            parts += [rest, b"\n"]
            try:
                number, rest = next(lines)
            except StopIteration:
                raise EnvFileError(f"line {start}: unclosed single quote") from None
    return b""


def container_env(container, volumes):
    """The container's environment as the kubelet resolves it, or raises RuntimeError with
    the CreateContainerConfigError message."""
    env = {}
    for var in container.get("env", []):
        if "value" in var or "valueFrom" not in var:
            env[var["name"]] = var.get("value", "")
            continue
        ref = var["valueFrom"]["fileKeyRef"]
        path = os.path.join(volumes[ref["volumeName"]], ref["path"])
        try:
            with open(path, "rb") as handle:
                value = parse_env(handle.read(), ref["key"].encode())
        except (OSError, EnvFileError):
            raise RuntimeError("couldn't parse env file") from None
        if value == b"":
            if ref.get("optional"):
                continue
            raise RuntimeError(f'environment variable key "{ref["key"]}" not found in file "{path}"')
        env[var["name"]] = value.decode("utf-8", "replace")
    return env


def read_as_task_user(path):
    """Read `path` in a child that has dropped to uid/gid 65534, as a task container runs."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with open(path, "rb") as handle:
                answer = {"ok": True, "data": handle.read().decode()}
        except OSError as exc:
            answer = {"ok": False, "error": exc.strerror}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as handle:
        text = handle.read()
    os.waitpid(pid, 0)
    return json.loads(text)


for path in plan["reads"]:
    results["reads"][path] = read_as_task_user(path)

results["env"] = {}
if all(init["code"] == 0 for init in results["init"]):
    for container in plan.get("containers", []):
        try:
            results["env"][container["name"]] = container_env(container, plan.get("volumes", {}))
        except RuntimeError as exc:
            results["env"][container["name"]] = {"CreateContainerConfigError": str(exc)}

modes = {}
for root, dirs, files in os.walk(plan["mount_path"]):
    for name in dirs + files:
        full = os.path.join(root, name)
        modes[full] = oct(os.stat(full).st_mode & 0o777)
results["modes"] = modes
print(json.dumps(results))
