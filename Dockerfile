# secretpatch webhook image: slim, non-root, fine with a read-only root filesystem.
#   docker build -t registry.example.com/secretpatch:0.1.0 .
# The build stage installs secretpatch[server] into a virtual environment (byte-compiled,
# so nothing is written at run time); the final stage copies only that environment.
FROM python:3.12-slim AS build
RUN python -m venv /opt/secretpatch
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine engine
COPY rules rules
COPY templates templates
RUN /opt/secretpatch/bin/pip install --no-cache-dir --no-compile ".[server]" \
 && /opt/secretpatch/bin/python -m compileall -q /opt/secretpatch

FROM python:3.12-slim
COPY --from=build /opt/secretpatch /opt/secretpatch
ENV PATH=/opt/secretpatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532 is the conventional "nonroot" user; the Deployment from `secretpatch manifests`
# runs as the same UID with readOnlyRootFilesystem and every capability dropped.
USER 65532:65532
EXPOSE 9443
ENTRYPOINT ["secretpatch"]
CMD ["serve", "--cert-dir", "/etc/webhook/certs", "--port", "9443"]
