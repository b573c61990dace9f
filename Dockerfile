# secretpatch webhook image: slim, non-root, fine with a read-only root filesystem.
#   docker build -t registry.example.com/secretpatch:0.1.0 .
# The base is pinned to a Python release of the minor version the tests run on (3.11;
# tests/test_deploy.py checks they agree). The build stage installs the exact dependency
# versions of requirements-server.lock (scripts/lock_server.py writes it), then secretpatch
# itself without resolving anything, into a byte-compiled virtual environment; the final stage
# copies only that environment.
FROM python:3.11.14-slim-bookworm AS build
RUN python -m venv /opt/secretpatch
WORKDIR /src
COPY requirements-server.lock pyproject.toml README.md LICENSE ./
COPY engine engine
COPY rules rules
COPY templates templates
RUN /opt/secretpatch/bin/pip install --no-cache-dir --no-compile -r requirements-server.lock \
 && /opt/secretpatch/bin/pip install --no-cache-dir --no-compile --no-deps . \
 && /opt/secretpatch/bin/python -m compileall -q /opt/secretpatch

FROM python:3.11.14-slim-bookworm
COPY --from=build /opt/secretpatch /opt/secretpatch
ENV PATH=/opt/secretpatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532 is the conventional "nonroot" user; the chart and `secretpatch manifests` run the pod
# as the same UID with readOnlyRootFilesystem and every capability dropped.
USER 65532:65532
# 10250: reachable from GKE private clusters' control planes (the chart's default too).
EXPOSE 10250
ENTRYPOINT ["secretpatch"]
CMD ["serve", "--cert-dir", "/etc/webhook/certs", "--port", "10250"]
