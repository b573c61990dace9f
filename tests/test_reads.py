"""What a template reads of `secret`, decided at load: only those fields are validated, so
the analysis may over-count a read but must never miss one."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from secretpatch.core.templating.reads import reads

ENV = jinja2.Environment()


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("{{ secret.group }}/{{ secret.group_version | lower }}", {}, {"group", "group_version"}),
        ("{{ secret['key'] }}", {}, {"key"}),
        ("{{ secret.group.upper() }}", {}, {"group"}),
        # A branch that values rule out is not read...
        ("{% if values.keyFiles and secret.key %}{{ secret.key }}{% endif %}", {"keyFiles": False}, set()),
        ("{% if values.keyFiles and secret.key %}{{ secret.key }}{% endif %}", {"keyFiles": True}, {"key"}),
        ("{{ 'x' if values.a.b else secret.key }}", {"a": {"b": 1}}, set()),
        ("{{ 'x' if values.a.b else secret.key }}", {"a": {"b": 0}}, {"key"}),
        ("{% if values.on or secret.key %}x{% endif %}", {"on": True}, set()),
        ("{% if values.on or secret.key %}x{% endif %}", {"on": False}, {"key"}),
        (
            "{% if not values.on %}{{ secret.group }}{% else %}{{ secret.key }}{% endif %}",
            {"on": False},
            {"group"},
        ),
        (
            "{% if values.n == 1 %}{{ secret.key }}{% elif values.on %}{{ secret.env_var }}"
            "{% else %}{{ secret.group }}{% endif %}",
            {"on": True, "n": 1},
            {"key"},  # values.n == 1 is decided: the elif is never reached
        ),
        (
            "{% if values.off %}{{ secret.key }}{% elif values.on %}{{ secret.env_var }}"
            "{% else %}{{ secret.group }}{% endif %}",
            {"on": True, "off": False},
            {"env_var"},
        ),
        # ...but one values do not decide is.
        ("{% if values.missing %}{{ secret.key }}{% endif %}", {}, {"key"}),
        ("{% if secret.group == 'a' %}{{ secret.key }}{% endif %}", {"x": 1}, {"group", "key"}),
        ("{% for x in [1] %}{{ secret.env_var }}{% endfor %}", {}, {"env_var"}),
        ("{% macro m() %}{{ secret.key }}{% endmacro %}", {}, {"key"}),
        ("{{ values.mountPath }}", {"mountPath": "/x"}, set()),
        # A value the rule may lack, with a default: known either way.
        ("{% if values.new | default(false) and secret.key %}{{ secret.key }}{% endif %}", {}, set()),
        (
            "{% if values.new | default(false) and secret.key %}{{ secret.key }}{% endif %}",
            {"new": True},
            {"key"},
        ),
        ("{% if values.new | default(true) %}{{ secret.key }}{% endif %}", {}, {"key"}),
        ("{% if values.new %}{{ secret.key }}{% endif %}", {}, {"key"}),  # missing: an error, so unknown
        # Comparisons of known values are decided too.
        ("{% if values.mode == 'on' %}{{ secret.env_var }}{% endif %}", {"mode": "off"}, set()),
        ("{% if values.mode == 'on' %}{{ secret.env_var }}{% endif %}", {"mode": "on"}, {"env_var"}),
        ("{% if values.mode != 'on' %}{{ secret.env_var }}{% endif %}", {"mode": "on"}, set()),
        ("{% if values.mode == secret.key %}x{% endif %}", {"mode": "on"}, {"key"}),
        ("{% if 1 < values.n %}{{ secret.key }}{% endif %}", {"n": 0}, {"key"}),  # only == and !=
        # A block is defined whatever branch it is in: self.k() renders it from anywhere.
        (
            "{% if values.off %}{% block k %}{{ secret.key }}{% endblock %}{% endif %}{{ self.k() }}",
            {"off": False},
            {"key"},
        ),
        ("{% if false %}{% block k %}{{ secret.key }}{% endblock %}{% endif %}", {}, {"key"}),
        # Jinja's getattr finds dict methods before items: values.keys is a (true) method.
        ("{% if values.keys %}{{ secret.key }}{% endif %}", {"keys": []}, {"key"}),
        ("{{ values.get and secret.key }}", {"get": False}, {"key"}),
    ],
)
def test_the_fields_a_template_may_read(source: str, values: dict[str, Any], expected: set[str]) -> None:
    assert reads(ENV.parse(source), "secret", values) == frozenset(expected)


@pytest.mark.parametrize(
    "source",
    [
        "{{ secret }}",
        "{{ secret | attr('key') }}",
        "{{ secret[name] }}",
        "{% set s = secret %}{{ s.key }}",
        "{% set secret = {} %}",
        "{% set values = {'keyFiles': True} %}{% if values.keyFiles %}{{ secret.key }}{% endif %}",
        "{% macro m(secret) %}{% endmacro %}",
        "{% include 'other.j2' %}",
        "{% import 'other.j2' as o %}",
        "{% from 'other.j2' import m %}",
        "{% extends 'base.j2' %}",
        "{% for k in ['key'] %}{{ secret[k] }}{% endfor %}",
    ],
)
def test_whatever_the_analysis_cannot_follow_counts_as_reading_every_field(source: str) -> None:
    assert reads(ENV.parse(source), "secret", {"keyFiles": False}) is None


INCLUDED = {
    "path.j2": "{% if values.keyFiles %}{{ secret.key }}{% else %}{{ secret.group }}{% endif %}",
    "inner.j2": "{{ secret.env_var }}{% include 'path.j2' %}",
    "cycle.j2": "{{ secret.group }}{% include 'cycle.j2' %}",
    "rebinds.j2": "{% set secret = 1 %}",
}


def load(name: str) -> Any:
    return ENV.parse(INCLUDED[name])


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("{% include 'path.j2' %}", {"keyFiles": False}, {"group"}),
        ("{% include 'path.j2' %}", {"keyFiles": True}, {"key"}),
        ("{% set p %}{% include 'inner.j2' %}{% endset %}{{ p }}", {"keyFiles": False}, {"env_var", "group"}),
        ("{% if values.keyFiles %}{% include 'inner.j2' %}{% endif %}", {"keyFiles": False}, set()),
        ("{% include 'cycle.j2' %}", {}, None),
        ("{% include 'rebinds.j2' %}", {}, None),
        ("{% include 'path.j2' without context %}", {"keyFiles": True}, None),
    ],
)
def test_an_included_template_is_read_where_it_stands(
    source: str, values: dict[str, Any], expected: set[str] | None
) -> None:
    """An include by name renders with the same context, so its reads count where it stands;
    one the walk cannot follow (a cycle, a rebinding) reads everything."""
    found = reads(ENV.parse(source), "secret", values, load)
    assert found == (None if expected is None else frozenset(expected))
