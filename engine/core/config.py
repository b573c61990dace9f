"""Configuration: Flyte's `webhook` section, and where secretpatch's own keys are (options.py reads them).

The file may be a whole Flyte configuration (with a top-level `webhook:`) or the section
alone. An operator's existing section must keep working, so every key Flyte has is accepted;
the ones secretpatch does not use are reported once each. A key nobody has is an error that
names the closest valid key, because a typo in a webhook config otherwise fails silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamldoc
from .errors import LoadError
from .limits import Limits
from .options import DEFAULT_PROFILE, OWN_SECTION, closest, dotted, read_options

log = logging.getLogger("secretpatch")

# Every key of Flyte's webhook section (flytepropeller's webhook config), with what Flyte uses
# it for, so that a warning can say why secretpatch ignores it.
FLYTE_KEYS: dict[str, str] = {
    "certDir": "where Flyte's webhook reads its certificates",
    "localCert": "Flyte's local-development certificates",
    "listenPort": "the port Flyte's webhook listens on",
    "serviceName": "the Service and webhook configuration Flyte creates",
    "servicePort": "the Service port Flyte's webhook configuration names",
    "secretName": "the Secret Flyte writes its certificates to",
    "metrics-prefix": "the prefix of Flyte's webhook metrics",
    "secretManagerType": "the single secret manager, when secretManagerTypes lists none",
    "secretManagerTypes": "the secret managers to try, in order",
    "awsSecretManager": "Flyte's AWS Secrets Manager injector",
    "gcpSecretManager": "Flyte's GCP Secret Manager injector",
    "azureSecretManager": "Flyte's Azure Key Vault injector",
    "vaultSecretManager": "Flyte's Vault agent injector",
    "embeddedSecretManagerConfig": "Flyte's embedded secret manager",
    "namespaceSelector": "the namespaces Flyte's webhook configuration selects",
    "disableCreateMutatingWebhookConfig": "whether Flyte's webhook creates its webhook configuration",
    "webhookTimeout": "a webhook timeout Flyte 2.0 declares and does not use either",
    "cacheInvalidationPort": "Flyte 2.0's secret-cache invalidation endpoint",
    "kubeClientConfig": "Flyte 2.0's Kubernetes client settings",
    "secretEnvVarPrefix": "the prefix of Flyte 2.0's embedded-secret environment variables",
    "imageBuilderConfig": "Flyte 2.0's image builder secrets",
}
# Flyte reads keys whatever their case (viper and mapstructure): `gcpsecretmanager` works.
_FLYTE_KEY_BY_CASE = {key.lower(): key for key in FLYTE_KEYS}
# Keys `secretpatch serve`, `webhook-config` and `manifests` read as Flyte does (flags win).
SERVER_KEYS = frozenset(
    {"certDir", "listenPort", "serviceName", "servicePort", "secretName", "namespaceSelector"}
)
FLYTE_MANAGER_TYPES = ("K8s", "AWS", "Vault", "GCP", "Azure", "Embedded")
# Flyte 2.0 always tries its Global injector first; a config may name it too.
GLOBAL_MANAGER = "Global"
DEFAULT_MANAGERS = ("GCP",)


@dataclass(frozen=True)
class Config:
    """The configuration as read; rules decide later which sections they consume."""

    file: str
    managers: tuple[str, ...] = DEFAULT_MANAGERS
    managers_path: tuple[str | int, ...] = ()
    managers_listed: bool = True  # from secretManagerTypes (or the default), not the singular key
    managers_given: bool = False  # the file names managers (either key), not secretpatch's default
    section: Mapping[str, Any] = field(default_factory=dict)
    section_path: tuple[str | int, ...] = ()
    rules_dir: Path | None = None
    templates_dir: Path | None = None
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    own_path: tuple[str | int, ...] = (OWN_SECTION,)
    doc: yamldoc.Doc | None = None
    # Each Flyte key as the file spells it (Flyte ignores case), for errors to point at.
    spelled: Mapping[str, str] = field(default_factory=dict)
    profile: str = DEFAULT_PROFILE
    on_refusal: str = "deny"

    def flyte(self, key: str, default: Any) -> Any:
        """A key of Flyte's webhook section, or Flyte's default for it."""
        value = self.section.get(key)
        return default if value is None else value

    def path(self, key: str, *rest: str | int) -> tuple[str | int, ...]:
        """Where a key of Flyte's section is in the file, for an error."""
        return (*self.section_path, self.spelled.get(key, key), *rest)

    def error(self, path: tuple[str | int, ...], message: str) -> LoadError:
        if self.doc is None:
            return LoadError(f"{dotted(path)}: {message}", file=self.file)
        return self.doc.error(path, f"{dotted(path)}: {message}")


def load_config(source: str | Path | Mapping[str, Any] | None) -> Config:
    """Read a config file (YAML or JSON), a dict, or nothing (defaults)."""
    if source is None:
        return Config(file="<defaults>")
    if isinstance(source, Mapping):
        doc = yamldoc.Doc(dict(source), "<config>")
        base = Path.cwd()
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LoadError(f"cannot read the config file: {exc.strerror}", file=str(path)) from None
        doc = yamldoc.load(text, str(path))
        base = path.resolve().parent
    return _parse(doc, base)


def _parse(doc: yamldoc.Doc, base: Path) -> Config:
    data = doc.data
    if data is None:
        return Config(file=doc.file, doc=doc)
    if not isinstance(data, Mapping):
        raise doc.error((), "the config must be a mapping (Flyte's webhook section, or a whole Flyte config)")
    own: Any = None
    own_path: tuple[str | int, ...] = ()
    if "webhook" in data:
        section_path: tuple[str | int, ...] = ("webhook",)
        section = data["webhook"] or {}
        if OWN_SECTION in data:
            own, own_path = data[OWN_SECTION], (OWN_SECTION,)
        for key in data:
            if key not in ("webhook", OWN_SECTION) and key.lower() in ("webhook", OWN_SECTION):
                raise doc.error((key,), f"unknown key {key!r}; did you mean {key.lower()!r}?")
    else:
        section_path, section = (), data
    if not isinstance(section, Mapping):
        raise doc.error(section_path, "the webhook section must be a mapping")
    flyte: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key in section:
        name = _FLYTE_KEY_BY_CASE.get(key.lower()) if isinstance(key, str) else None
        if key == OWN_SECTION:
            if own is not None:
                raise doc.error((*section_path, key), "secretpatch's keys are given twice")
            own, own_path = section[key], (*section_path, key)
        elif name is None:
            where = dotted((*section_path, key))
            raise doc.error(
                (*section_path, key),
                f"unknown key {where!r}; {closest(str(key), [*FLYTE_KEYS, OWN_SECTION])}",
            )
        elif name in flyte:
            raise doc.error(
                (*section_path, key),
                f"{key!r} and {spelled[name]!r} are the same key to Flyte, which ignores case; keep one",
            )
        else:
            flyte[name], spelled[name] = section[key], key
    managers, managers_path = _managers(doc, flyte, spelled, section_path)
    listed = flyte.get("secretManagerTypes") not in (None, []) or "secretManagerType" not in flyte
    options = read_options(doc, own, own_path, base)
    return Config(
        file=doc.file,
        managers=managers,
        managers_path=managers_path,
        managers_listed=listed,
        managers_given="secretManagerTypes" in flyte or "secretManagerType" in flyte,
        section=flyte,
        spelled=spelled,
        section_path=section_path,
        rules_dir=options.rules_dir,
        templates_dir=options.templates_dir,
        values=options.values,
        limits=options.limits,
        own_path=own_path or (OWN_SECTION,),
        doc=doc,
        profile=options.profile,
        on_refusal=options.on_refusal,
    )


def _managers(
    doc: yamldoc.Doc,
    flyte: Mapping[str, Any],
    spelled: Mapping[str, str],
    section_path: tuple[str | int, ...],
) -> tuple[tuple[str, ...], tuple[str | int, ...]]:
    """The managers the section enables, as Flyte computes them: `secretManagerTypes` (2.0),
    or when it is absent or empty the singular `secretManagerType` (1.16's only key); with
    neither, GCP (the managers secretpatch serves), and where in the file they were given."""
    for key in ("secretManagerTypes", "secretManagerType"):
        value = flyte.get(key)
        path = (*section_path, spelled.get(key, key))
        if key == "secretManagerTypes" and value is not None:
            if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
                raise doc.error(path, "secretManagerTypes must be a list of names, such as [GCP]")
            if value:
                return tuple(value), path
        elif key == "secretManagerType" and value is not None:
            if not isinstance(value, str) or not value:
                raise doc.error(path, "secretManagerType must be one name, such as GCP")
            return (value,), path
    return DEFAULT_MANAGERS, (*section_path, "secretManagerTypes")


def manager_spellings(rule_managers: Iterable[str] = ()) -> dict[str, str]:
    """Manager names by their lower case, as Flyte 2.0 reads them whatever their case (`gcp`
    is GCP): Flyte's types, Global, and the managers of the rules at hand."""
    return {name.lower(): name for name in (*FLYTE_MANAGER_TYPES, GLOBAL_MANAGER, *sorted(rule_managers))}


def flyte_managers(config: Config) -> tuple[str, ...]:
    """The secret managers Flyte 2.0 would try for this config, as its messages print them:
    Global first (always; a second time if the config lists it too, as Flyte does), then the
    configured ones in Flyte's spelling (`gcp` is GCP)."""
    by_case = manager_spellings()
    return (GLOBAL_MANAGER, *(by_case.get(name.lower(), name) for name in config.managers))


def warn_ignored(config: Config, consumed: set[str]) -> list[str]:
    """One warning for each Flyte key present that secretpatch does not act on."""
    messages = []
    for key in config.section:
        used = "secretManagerTypes" if config.managers_listed else "secretManagerType"
        empty_list = key == "secretManagerTypes" and not config.section[key]  # the singular is used
        if key != used and not empty_list and key not in consumed | SERVER_KEYS:
            where = dotted(config.path(key))
            messages.append(f"{config.file}: {where} is ignored: secretpatch does not use {FLYTE_KEYS[key]}")
    for message in messages:
        log.warning(message)
    return messages
