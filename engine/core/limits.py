"""The caps on what one review may cost and the byte budgets of what the engine keeps, with
their defaults: `secretpatch.limits` in the config (read by config.py)."""

from __future__ import annotations

from dataclasses import dataclass

PARSER_DEPTH = 1024  # orjson refuses deeper nesting by itself


@dataclass(frozen=True)
class Limits:
    """Caps on what one review may cost, and byte budgets of what the engine remembers.

    The caps are far above any real Flyte pod (which asks for a handful of secrets and has a
    few containers); a pod over a cap is denied with a message naming the cap. The budgets
    count keys and kept facts as well as values; a budget of 0 keeps nothing."""

    maxSecrets: int = 500
    # All of a pod's flyte.secrets/* values together, in characters (base32). A typical
    # request is 100 to 150 characters, so 64 KiB holds over 400 of them.
    maxAnnotationChars: int = 64 * 1024
    maxContainers: int = 200
    maxListItems: int = 4096
    # Operations in one patch. Flyte's mutation of 500 secrets in a pod of 200 containers
    # takes about 3,000; a patch far past that would make a pod the API server refuses.
    maxPatchOperations: int = 10_000
    maxRequestBytes: int = 3 * 1024 * 1024
    maxJsonDepth: int = PARSER_DEPTH  # lower it to walk bodies for a stricter cap
    # Commas and opening brackets in a request body: what its parsed document may cost (50 to
    # 100 bytes an item). A 1.3 MB pod with 20 containers of 2,000 env vars has 120,000.
    maxJsonItems: int = 256 * 1024
    # Not per review: what the engine keeps between reviews (see budget.py). The review
    # memo's 0 turns it off; the others' 0 computes everything afresh every time.
    memoBytes: int = 16 << 20
    decodeCacheBytes: int = 2 << 20
    ruleCacheBytes: int = 1 << 20
    renderCacheBytes: int = 8 << 20
    encoderCacheBytes: int = 4 << 20


LIMIT_KEYS = tuple(Limits.__dataclass_fields__)
