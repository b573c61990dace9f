"""The commands that put secretpatch into a cluster without Helm (`manifests`) and keep its
certificates there (`cluster-certs`, what the chart's certificate Job runs). They need the
`server` extra for certificates, imported only when they run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .deploy import default_secret_name, flyte_key, require_server, webhook_options
from .flags import webhook_flags
from .io import ExitCode, UsageError


def cmd_manifests(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..tools.manifests import (
        CONTAINER_PORT,
        DEFAULT_CONFIG,
        DeployOptions,
        cluster_objects,
        excluding_system_namespaces,
    )

    webhook = webhook_options(args)
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
        port=int(flyte_key(args, "listenPort", CONTAINER_PORT)),
        folders=folders,
    )
    ca_pem, secret = None, None
    if not args.cert_manager:
        require_server("manifests (its certificates)")
        from ..webhook import certs

        bundle = _bundle(args, webhook.service, webhook.namespace)
        secret = certs.secret_manifest(bundle, options.secret_name, webhook.namespace, webhook.service)
        ca_pem = bundle.ca_cert
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
    require_server("cluster-certs")
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
