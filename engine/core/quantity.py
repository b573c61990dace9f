"""Kubernetes resource quantities, written as Kubernetes writes them back.

Flyte reads the init container's `resources` into Go's `resource.Quantity`, so a config that
says `cpu: 0.5` gives a pod with `cpu: 500m`, and `memory: 1024Mi` gives `1Gi`. secretpatch
renders the same strings: a quantity is parsed by the grammar of k8s.io/apimachinery's
`ParseQuantity` and printed as its `String()` does (the canonical form), with Python's exact
decimals in place of Go's integers. A value that is not a quantity is an error, as it is for
Flyte when it loads its config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_UP, Decimal, localcontext
from typing import Any

_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<decimal>[numkMGTPE]?)|[eE](?P<exponent>[+-]?[0-9]+))"
)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL.items()}
_BINARY_SUFFIX = {exponent // 10: suffix for suffix, exponent in _BINARY.items()}
_NANO = Decimal("1e-9")
_LARGEST = Decimal(2**63 - 1)


class QuantityError(ValueError):
    """Not a Kubernetes quantity; the message says what one looks like."""


def canonical(value: Any) -> str:
    """`value` (a string, or a YAML number) as Kubernetes prints the quantity it reads:
    `0.5` is `500m`, `1000m` is `1`, `1024Mi` is `1Gi`, `1.5Gi` is `1536Mi`."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"{value!r} is not a quantity (such as 500m, 1, 512Mi or 2Gi)")
    text = value if isinstance(value, str) else repr(value)
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(f"{text!r} is not a quantity (such as 500m, 1, 512Mi or 2Gi)")
    with localcontext() as context:
        context.prec = 200  # exact for every quantity Kubernetes can hold
        number = Decimal(match["number"])
        if match["binary"]:
            kind, amount = "binary", number * (2 ** _BINARY[match["binary"]])
        elif match["exponent"] is not None:
            kind, amount = "exponent", number.scaleb(int(match["exponent"]))
        else:
            kind, amount = "decimal", number.scaleb(_DECIMAL[match["decimal"]])
        # Kubernetes keeps nine decimal places, rounding away from zero, and caps the amount
        # at the largest int64.
        amount = min(amount.quantize(_NANO, rounding=ROUND_UP), _LARGEST)
        if match["sign"] == "-":
            amount = -amount
        return _format(amount, kind)


def _format(amount: Decimal, kind: str) -> str:
    if amount == 0:
        return "0"
    if kind == "binary" and not (-1024 < amount < 1024) and amount == amount.to_integral_value():
        whole, power = int(amount), 0
        while whole % 1024 == 0 and power < max(_BINARY_SUFFIX):
            whole, power = whole // 1024, power + 1
        return f"{whole}{_BINARY_SUFFIX[power]}"
    # Decimal: the integer mantissa with the exponent a multiple of three, as small as it can be.
    sign, digits, exponent = amount.normalize().as_tuple()
    mantissa = int("".join(map(str, digits)))
    assert isinstance(exponent, int)
    while exponent % 3:
        mantissa, exponent = mantissa * 10, exponent - 1
    if kind != "exponent":
        while exponent > max(_DECIMAL_SUFFIX):
            mantissa, exponent = mantissa * 1000, exponent - 3
    suffix = _DECIMAL_SUFFIX[exponent] if kind != "exponent" else (f"e{exponent}" if exponent else "")
    return f"{'-' if sign else ''}{mantissa}{suffix}"


def canonical_resources(resources: Any) -> Any:
    """A ResourceRequirements mapping with every quantity of `requests` and `limits` canonical;
    anything else is left as it is. A bad quantity names its place."""
    if not isinstance(resources, Mapping):
        return resources
    result = dict(resources)
    for part in ("requests", "limits"):
        amounts = resources.get(part)
        if not isinstance(amounts, Mapping):
            continue
        converted = {}
        for name, amount in amounts.items():
            try:
                converted[name] = canonical(amount)
            except QuantityError as exc:
                raise QuantityError(f"resources.{part}.{name}: {exc}") from None
        result[part] = converted
    return result
