"""Runs a pod's init containers as the kubelet would, inside a private mount namespace.

Called by tests/test_pod_starts.py as `unshare --mount --propagation private python3
driver.py PLAN`. /etc is overlaid (so nothing is written to the host's /etc) and
/etc/flyte/secrets becomes a fresh memory filesystem, as the pod's emptyDir(medium: Memory)
is. The init containers run in order with `sh -ec`, as root, with their env and the stand-in
gcloud on PATH; the first that fails stops the pod. The plan's `container_start` (seconds,
default 0) is slept before each init container, as the kubelet's cost of starting one, and
`results["initialized"]` is the time from the first start to the moment the main container
could start (bench/podstart.py reports it). Then, as an unprivileged user (like a
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

modes = {}
for root, dirs, files in os.walk(plan["mount_path"]):
    for name in dirs + files:
        full = os.path.join(root, name)
        modes[full] = oct(os.stat(full).st_mode & 0o777)
results["modes"] = modes
print(json.dumps(results))
