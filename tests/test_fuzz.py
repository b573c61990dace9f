"""A modest fuzz run on every `make test`; `make fuzz` runs the same checks at length."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from secretpatch import Engine, InputError

from .strategies import check_answer, reviews

ENGINE = Engine.from_config(None)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(reviews)
def test_any_review_gets_a_well_formed_answer_or_an_input_error(document: Any) -> None:
    try:
        answer = ENGINE.review(document)
    except InputError as exc:
        assert str(exc)
        return
    check_answer(document, answer)
