"""The commands that run or deploy the webhook: serve, certs, webhook-config, manifests.

They need the `server` extra (uvicorn, cryptography, ...), imported only when one of them
runs, so that `render` and `review` work with the engine's dependencies alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ..core.config import load_config
from .flags import limit_flags, webhook_flags
from .io import ExitCode, UsageError, require


def _server_extra(what: str) -> None:
    require(what, "server", "cryptography", "uvicorn")


def _flyte(args: argparse.Namespace, key: str, default: Any) -> Any:
    """A Flyte webhook key from --config, for defaults that flags override."""
    if args.config is None:
        return default
    return load_config(args.config).flyte(key, default)


def cmd_serve(args: argparse.Namespace) -> int:
    _server_extra("serve")
    from ..core.runtime import Engine
    from ..webhook.connections import ConnectionLimits
    from ..webhook.run import ServeError, configure_logging, dev_cert_dir, serve

    configure_logging()
    engine = Engine.from_config(args.config)
    port = args.port if args.port is not None else int(engine.config.flyte("listenPort", 9443))
    if args.dev_certs:
        cert_dir = dev_cert_dir()
    else:
        cert_dir = Path(args.cert_dir or engine.config.flyte("certDir", "/etc/webhook/certs"))
    try:
        return serve(
            engine,
            host=args.host,
            port=port,
            cert_dir=cert_dir,
            reload_interval=args.cert_reload_interval,
            grace=args.grace,
            limits=ConnectionLimits(
                max_header_bytes=args.max_header_bytes,
                max_connections=args.max_connections,
                request_timeout=args.request_timeout,
                keep_alive_timeout=args.keep_alive_timeout,
            ),
            review_timeout=args.review_timeout,
            max_pending_bytes=args.max_pending_bytes,
            config_source=args.config,
        )
    except ServeError as exc:
        raise UsageError(str(exc)) from None


def cmd_certs(args: argparse.Namespace) -> int:
    _server_extra("certs")
    from ..webhook import certs

    service = args.service or _flyte(args, "serviceName", "flyte-pod-webhook")
    if args.out_dir is None and args.secret is None:
        raise UsageError("say where the certificates go: --out-dir DIR, --secret NAME, or both")
    if args.renew:
        if args.out_dir is None:
            raise UsageError("--renew re-signs with the CA in --out-dir; give --out-dir")
        try:
            ca_cert = (args.out_dir / "ca.crt").read_bytes()
            ca_key = (args.out_dir / "ca.key").read_bytes()
        except OSError as exc:
            raise UsageError(f"--renew needs ca.crt and ca.key in {args.out_dir}: {exc.strerror}") from None
        cert, key = certs.serving_cert(
            ca_cert, ca_key, service, args.namespace, days=args.days, key_type=args.key_type, dev=args.dev
        )
        bundle = certs.Bundle(ca_cert, ca_key, cert, key)
    else:
        bundle = certs.generate(service, args.namespace, days=args.days, key_type=args.key_type, dev=args.dev)
    if args.out_dir is not None:
        for path in certs.write_files(bundle, args.out_dir):
            print(f"wrote {path}", file=sys.stderr)
    if args.secret is not None:
        secret_name = args.secret or default_secret_name(args, service)
        print(
            yaml.safe_dump(certs.secret_manifest(bundle, secret_name, args.namespace), sort_keys=False),
            end="",
        )
    info = certs.describe(bundle.cert)
    print(
        f"serving certificate: {info['subject']}; SANs {', '.join(info['sans'])}; valid until {info['not_after']}",
        file=sys.stderr,
    )
    return ExitCode.OK


# Without --config: Flyte's defaults written out, as the chart's values.yaml has them.
DEFAULT_CONFIG = """webhook:
  secretManagerTypes: [GCP]
  gcpSecretManager:
    sidecarImage: gcr.io/google.com/cloudsdktool/cloud-sdk:alpine
    resources:
      requests: {cpu: 200m, memory: 500Mi}
      limits: {cpu: 200m, memory: 500Mi}
"""


def default_secret_name(args: argparse.Namespace, service: str) -> str:
    """The certificate Secret's name: the config's secretName, else `<service>-tls`, as the
    chart names it. `certs --secret` and `manifests` agree on it."""
    return str(_flyte(args, "secretName", f"{service}-tls"))


def cmd_webhook_config(args: argparse.Namespace) -> int:
    from ..tools.webhook_config import webhook_configuration

    try:
        ca = args.ca_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.ca_file}: {exc.strerror}") from None
    if b"BEGIN CERTIFICATE" not in ca:
        raise UsageError(f"{args.ca_file} is not a PEM certificate")
    print(yaml.safe_dump(webhook_configuration(ca, _webhook_options(args)), sort_keys=False), end="")
    return ExitCode.OK


def _webhook_options(args: argparse.Namespace) -> Any:
    from ..tools.webhook_config import WebhookOptions

    selector = _flyte(args, "namespaceSelector", {})
    if args.namespace_selector is not None:
        try:
            selector = json.loads(args.namespace_selector)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--namespace-selector is not JSON: {exc}") from None
    if not isinstance(selector, dict):
        raise UsageError("the namespace selector must be a LabelSelector object")
    if not 1 <= args.timeout_seconds <= 30:
        raise UsageError("timeoutSeconds must be between 1 and 30 (the API server's limits)")
    return WebhookOptions(
        service=args.service or _flyte(args, "serviceName", "flyte-pod-webhook"),
        namespace=args.namespace,
        name=args.name,
        port=args.port if args.port is not None else int(_flyte(args, "servicePort", 443)),
        timeout_seconds=args.timeout_seconds,
        reinvocation_policy=args.reinvocation_policy,
        failure_policy=args.failure_policy,
        namespace_selector=selector,
    )


def cmd_manifests(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..tools.manifests import CONTAINER_PORT, DeployOptions, cluster_objects, excluding_system_namespaces

    webhook = _webhook_options(args)
    webhook = replace(
        webhook,
        side_effects="None",
        namespace_selector=excluding_system_namespaces(webhook.namespace_selector, webhook.namespace),
    )
    config_text = DEFAULT_CONFIG
    folders: dict[str, dict[str, str]] = {}
    if args.config is not None:
        config_text, folders = _config_and_folders(args.config)
    if args.replicas < 1:
        raise UsageError("--replicas must be 1 or more")
    options = DeployOptions(
        webhook=webhook,
        image=args.image or f"secretpatch:{__version__}",
        secret_name=args.secret_name or default_secret_name(args, webhook.service),
        replicas=args.replicas,
        cert_manager=args.cert_manager,
        config_text=config_text,
        port=int(_flyte(args, "listenPort", CONTAINER_PORT)),
        folders=folders,
    )
    ca_pem, secret = None, None
    if not args.cert_manager:
        _server_extra("manifests (its certificates)")
        from ..webhook import certs

        bundle = _bundle(args, webhook.service, webhook.namespace)
        ca_pem, secret = bundle.ca_cert, certs.secret_manifest(bundle, options.secret_name, webhook.namespace)
        secret["metadata"]["labels"] = {
            "app.kubernetes.io/name": "secretpatch",
            "app.kubernetes.io/instance": webhook.service,
        }
    print(yaml.safe_dump_all(cluster_objects(options, ca_pem, secret), sort_keys=False), end="")
    return ExitCode.OK


def _config_and_folders(path: Path) -> tuple[str, dict[str, dict[str, str]]]:
    """The config file's text for the ConfigMap, and the operator's rules and templates, with
    the config pointed at where the ConfigMaps are mounted."""
    from ..core.runtime import Engine
    from ..tools.manifests import FOLDER_ROOT, file_key

    config = Engine.from_config(path).config  # refuse a broken config here, not in the cluster
    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    folders: dict[str, dict[str, str]] = {}
    for kind, folder in (("rules", config.rules_dir), ("templates", config.templates_dir)):
        if folder is None:
            continue
        found = sorted(folder.glob("*.yaml")) if kind == "rules" else sorted(folder.rglob("*"))
        files = {
            p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in found
            if p.is_file() and "__pycache__" not in p.parts
        }
        for name in files:
            try:
                file_key(name)
            except ValueError as exc:
                raise UsageError(f"{folder}: {exc}; rename it to put it in a ConfigMap") from None
        folders[kind] = files
        own = data
        for part in config.own_path:
            own = own.setdefault(part, {}) if isinstance(own, dict) else own
        own[kind] = f"{FOLDER_ROOT}/{kind}"
    if folders:
        note = "# Written by secretpatch manifests: the rules and templates folders are ConfigMaps mounted here.\n"
        text = note + yaml.safe_dump(data, sort_keys=False)
    return text, folders


def _bundle(args: argparse.Namespace, service: str, namespace: str) -> Any:
    """The certificates: from --cert-dir when it has them (so that running `manifests` again
    changes nothing), else new ones, written to --cert-dir when it is given."""
    from ..webhook import certs

    directory: Path | None = args.cert_dir
    names = ("ca.crt", "ca.key", "tls.crt", "tls.key")
    if directory is not None and all((directory / n).is_file() for n in names):
        try:
            bundle = certs.Bundle(*((directory / n).read_bytes() for n in names))
            info = certs.describe(bundle.cert)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--cert-dir {directory}: cannot read its certificates: {exc}") from None
        expected = certs.dns_names(service, namespace)
        if not set(expected) <= set(info["sans"]):
            raise UsageError(
                f"--cert-dir {directory}: its certificate is for {', '.join(info['sans'])}, not "
                f"{', '.join(expected)}; give another folder, or --service/--namespace to match"
            )
        print(f"reusing the certificates in {directory} (valid until {info['not_after']})", file=sys.stderr)
        return bundle
    bundle = certs.generate(service, namespace, days=args.days)
    if directory is not None:
        certs.write_files(bundle, directory)
        print(
            f"wrote new certificates to {directory}; ca.key is the CA's private key: keep it "
            "private (it signs certificates the API server trusts for this webhook) and keep it "
            "for the next run, which reuses these files",
            file=sys.stderr,
        )
    return bundle


def cmd_cluster_certs(args: argparse.Namespace) -> int:
    _server_extra("cluster-certs")
    from ..webhook import clustercerts
    from ..webhook.kubeapi import APIError, KubeAPI

    namespace = args.namespace
    if namespace is None:
        try:
            namespace = (
                (Path("/var/run/secrets/kubernetes.io/serviceaccount") / "namespace").read_text().strip()
            )
        except OSError:
            raise UsageError(
                "give --namespace (not in a pod, so it cannot be read from the ServiceAccount)"
            ) from None
    try:
        outcome = clustercerts.ensure(
            KubeAPI.from_environment(args.api_server),
            namespace=namespace,
            secret_name=args.secret,
            webhook_name=args.webhook,
            service=args.service,
            days=args.days,
        )
    except (APIError, LookupError) as exc:
        print(f"secretpatch: cluster-certs: {exc}", file=sys.stderr)
        return ExitCode.REJECTED
    print(
        f"Secret {namespace}/{args.secret}: {outcome.secret}; caBundle written to "
        f"{outcome.webhooks} webhook(s) of {args.webhook}",
        file=sys.stderr,
    )
    return ExitCode.OK


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the HTTPS webhook")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104
    serve.add_argument("--port", type=int, help="port (default: the config's listenPort, else 9443)")
    serve.add_argument(
        "--cert-dir", help="folder with tls.crt and tls.key (default: certDir, else /etc/webhook/certs)"
    )
    serve.add_argument("--dev-certs", action="store_true", help="make throwaway certificates for localhost")
    serve.add_argument(
        "--cert-reload-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often to look for new certificate files (default 10)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=25.0,
        metavar="SECONDS",
        help="how long in-flight reviews may take after SIGTERM (default 25)",
    )
    limit_flags(serve)
    serve.set_defaults(func=cmd_serve)

    certs = commands.add_parser("certs", parents=[common], help="make a CA and a serving certificate")
    certs.add_argument(
        "--service", help="the webhook's Service (default: serviceName, else flyte-pod-webhook)"
    )
    certs.add_argument("--namespace", default="flyte", help="its namespace (default flyte)")
    certs.add_argument("--out-dir", type=Path, help="write ca.crt, ca.key, tls.crt, tls.key here")
    certs.add_argument(
        "--secret",
        nargs="?",
        const="",
        help="print a kubernetes.io/tls Secret (default name: secretName, else <service>-tls)",
    )
    certs.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    certs.add_argument(
        "--key-type", choices=("ecdsa", "rsa"), default="ecdsa", help="ECDSA P-256 (default) or RSA 2048"
    )
    certs.add_argument("--dev", action="store_true", help="also valid for localhost and 127.0.0.1")
    certs.add_argument(
        "--renew", action="store_true", help="new serving certificate from the CA already in --out-dir"
    )
    certs.set_defaults(func=cmd_certs)

    hook = commands.add_parser(
        "webhook-config", parents=[common], help="print the MutatingWebhookConfiguration"
    )
    hook.add_argument("--ca-file", type=Path, required=True, help="the CA certificate (ca.crt) for caBundle")
    webhook_flags(hook)
    hook.set_defaults(func=cmd_webhook_config)

    manifests = commands.add_parser(
        "manifests", parents=[common], help="print every object a cluster needs, for kubectl apply -f -"
    )
    webhook_flags(manifests)
    manifests.add_argument(
        "--image", help="the secretpatch image (default secretpatch:<version>; build it from the Dockerfile)"
    )
    manifests.add_argument("--replicas", type=int, default=2, help="webhook replicas (default 2)")
    manifests.add_argument(
        "--cert-manager", action="store_true", help="let cert-manager issue and renew the certificate"
    )
    manifests.add_argument(
        "--days", type=int, default=3650, help="validity of generated certificates (default 3650)"
    )
    manifests.add_argument(
        "--cert-dir",
        type=Path,
        help="reuse the certificates in DIR (ca.crt, ca.key, tls.crt, tls.key), or write new ones "
        "there, so that running manifests again changes no certificate",
    )
    manifests.add_argument(
        "--secret-name", help="the certificate Secret (default: secretName, else <service>-tls)"
    )
    manifests.set_defaults(func=cmd_manifests)

    cluster = commands.add_parser(
        "cluster-certs",
        parents=[common],
        help="make or keep the certificate Secret in the cluster and put its CA in the webhook configuration",
        description="What the chart's certificate Job runs (certificates.selfSigned.generator: job). "
        "The Secret is kept while its certificate is for the Service and more than 30 days from "
        "expiry; otherwise a new CA and certificate replace it. Then every webhook of the "
        "configuration gets the CA as its caBundle.",
    )
    cluster.add_argument("--secret", required=True, help="the certificate Secret")
    cluster.add_argument("--webhook", required=True, help="the MutatingWebhookConfiguration")
    cluster.add_argument("--service", required=True, help="the webhook's Service")
    cluster.add_argument("--namespace", help="their namespace (default: the pod's)")
    cluster.add_argument("--days", type=int, default=3650, help="validity of new certificates (default 3650)")
    cluster.add_argument(
        "--api-server",
        help="the API server's URL (default: the cluster's, from inside a pod; or kubectl proxy's)",
    )
    cluster.set_defaults(func=cmd_cluster_certs)


__all__ = ["add_commands"]
