"""Resource quantities come out as Kubernetes (and so Flyte's config loader) writes them."""

from __future__ import annotations

from typing import Any

import pytest
from secretpatch import Engine, LoadError
from secretpatch.core.quantity import QuantityError, canonical

from .conftest import flyte_pod


@pytest.mark.parametrize(
    ("given", "written"),
    [
        # CPU, as resource.Quantity's String() prints it
        ("1000m", "1"),
        ("500m", "500m"),
        ("0.5", "500m"),
        (0.5, "500m"),  # a YAML number
        ("2.5", "2500m"),
        (1, "1"),
        ("0", "0"),
        ("0m", "0"),
        (".1", "100m"),
        ("1.0", "1"),
        ("1200", "1200"),
        ("1000", "1k"),
        ("1n", "1n"),
        ("0.1n", "1n"),  # nine decimal places, rounded away from zero
        ("-0.5", "-500m"),
        # memory
        ("100Mi", "100Mi"),
        ("500Mi", "500Mi"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Ki", "512"),  # under 1Ki: decimal
        ("0.1Gi", "107374182400m"),  # not a whole number of bytes: decimal, exact
        ("107374182400m", "107374182400m"),
        ("0Mi", "0"),
        ("1E", "1E"),
        # exponents stay exponents
        ("12e6", "12e6"),
        ("1e-05", "10e-6"),
        ("1E-3", "1e-3"),
        ("12e1", "120"),
        # beyond int64, capped as Kubernetes caps it
        ("100000000000000000000", "9223372036854775807"),
    ],
)
def test_a_quantity_is_written_in_kubernetes_canonical_form(given: Any, written: str) -> None:
    assert canonical(given) == written


@pytest.mark.parametrize("given", ["", "1.2.3", "abc", "1 Gi", "1Gb", "1ki", "--1", True, None, [1], "e3"])
def test_anything_else_is_not_a_quantity(given: Any) -> None:
    with pytest.raises(QuantityError, match="is not a quantity"):
        canonical(given)


def test_the_config_gets_flytes_quantities_in_the_init_container() -> None:
    """Flyte parses `resources` into resource.Quantity: `cpu: 0.5` gives a pod with 500m."""
    engine = Engine.from_config(
        {"webhook": {"gcpSecretManager": {"resources": {"requests": {"cpu": 0.5, "memory": "1024Mi"}}}}}
    )
    (init,) = engine.mutate(flyte_pod({"group": "a", "group_version": "1"})).pod["spec"]["initContainers"]
    assert init["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "200m", "memory": "500Mi"},
    }


def test_a_bad_quantity_stops_loading_and_names_it() -> None:
    with pytest.raises(LoadError) as caught:
        Engine.from_config({"webhook": {"gcpSecretManager": {"resources": {"limits": {"memory": "lots"}}}}})
    assert "resources.limits.memory: 'lots' is not a quantity (such as 500m, 1, 512Mi or 2Gi)" in str(
        caught.value
    )
