"""The commands that run the webhook and make its pieces: serve, certs, webhook-config.
install.py puts them together for a cluster (manifests, cluster-certs).

They need the `server` extra (uvicorn, cryptography, ...), imported only when one of them
runs, so that `render` and `review` work with the engine's dependencies alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ..core.config import load_config
from .flags import limit_flags, webhook_flags
from .io import ExitCode, UsageError, require


def require_server(what: str) -> None:
    require(what, "server", "cryptography", "uvicorn")


def flyte_key(args: argparse.Namespace, key: str, default: Any) -> Any:
    """A Flyte webhook key from --config, for defaults that flags override."""
    if args.config is None:
        return default
    return load_config(args.config).flyte(key, default)


def cmd_serve(args: argparse.Namespace) -> int:
    require_server("serve")
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
    require_server("certs")
    from ..webhook import certs

    service = args.service or flyte_key(args, "serviceName", "flyte-pod-webhook")
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
def default_secret_name(args: argparse.Namespace, service: str) -> str:
    """The certificate Secret's name: the config's secretName, else `<service>-tls`, as the
    chart names it. `certs --secret` and `manifests` agree on it."""
    return str(flyte_key(args, "secretName", f"{service}-tls"))


def cmd_webhook_config(args: argparse.Namespace) -> int:
    from ..tools.webhook_config import webhook_configuration

    try:
        ca = args.ca_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.ca_file}: {exc.strerror}") from None
    if b"BEGIN CERTIFICATE" not in ca:
        raise UsageError(f"{args.ca_file} is not a PEM certificate")
    print(yaml.safe_dump(webhook_configuration(ca, webhook_options(args)), sort_keys=False), end="")
    return ExitCode.OK


def webhook_options(args: argparse.Namespace) -> Any:
    from ..tools.webhook_config import WebhookOptions

    selector = flyte_key(args, "namespaceSelector", {})
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
        service=args.service or flyte_key(args, "serviceName", "flyte-pod-webhook"),
        namespace=args.namespace,
        name=args.name,
        port=args.port if args.port is not None else int(flyte_key(args, "servicePort", 443)),
        timeout_seconds=args.timeout_seconds,
        reinvocation_policy=args.reinvocation_policy,
        failure_policy=args.failure_policy,
        namespace_selector=selector,
    )


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


__all__ = ["add_commands"]
