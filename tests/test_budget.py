"""The caches' byte budgets, and the doorkeeper that keeps an entry only at its second sight."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from secretpatch import Engine
from secretpatch.core.budget import BoundedCache, Doorkeeper

from .conftest import admission_review, flyte_pod


@given(st.lists(st.text(max_size=12), max_size=200, unique=True))
def test_a_doorkeeper_remembers_every_key_offered_since_its_reset(keys: list[str]) -> None:
    door = Doorkeeper(bits=1 << 12)  # resets after 512 keys: none here
    for key in keys:
        door.seen(key)
    assert all(door.seen(key) for key in keys)


def test_a_doorkeeper_forgets_once_an_eighth_of_its_bits_are_set() -> None:
    door = Doorkeeper(bits=64)
    assert not door.seen("first") and door.seen("first")
    new_keys = 1
    for n in range(10_000):
        new_keys += not door.seen(f"key {n}")
        if not door.seen("first"):  # forgotten: the bits were cleared (and "first" set again)
            break
    # Eight bits of 64 set clear them all: each new key sets one or two.
    assert 4 <= new_keys <= 8


def test_a_doorkeeper_rarely_says_yes_to_a_key_never_offered() -> None:
    """A wrong yes keeps an entry at first sight, which is what the doorkeeper is there to
    avoid. With two bits per key and at most an eighth of them set, about one key in 200
    (one bit per key: one in 16)."""
    door = Doorkeeper()
    wrong = sum(door.seen(f"never offered {n}") for n in range(100_000))
    assert wrong < 2_000


@pytest.mark.parametrize("bits", [0, 7, 100])
def test_a_doorkeeper_needs_a_power_of_two_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Doorkeeper(bits)


def test_a_second_sight_cache_keeps_an_entry_when_its_key_comes_again() -> None:
    cache: BoundedCache[str, str] = BoundedCache("t", 1 << 20, second_sight=True)
    floor = cache.stats().bytes
    assert floor == Doorkeeper().nbytes, "the doorkeeper's bits count in the budget"
    cache.put("a", "value")
    assert cache.get("a") is None and cache.stats().entries == 0
    cache.put("a", "value")
    assert cache.get("a") == "value" and cache.stats().bytes > floor
    computed = []
    lookup = cache.cached(lambda key: computed.append(key) or key.upper())
    assert [lookup("b"), lookup("b"), lookup("b")] == ["B", "B", "B"]
    assert computed == ["b", "b"], "computed at first and second sight, then kept"


def test_a_small_budget_has_no_doorkeeper_and_keeps_at_first_sight() -> None:
    cache: BoundedCache[str, str] = BoundedCache("t", 64 << 10, second_sight=True)
    cache.put("a", "value")
    assert cache.get("a") == "value" and cache.stats().bytes < 2000


def test_secrets_seen_once_do_not_push_out_those_asked_for_again() -> None:
    """A flood of pods with one-off secrets (new tasks, or a hostile client) leaves the
    renders of a task that keeps running in the cache, and pays for almost no entry of its own."""
    engine = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 0, "renderCacheBytes": 1 << 20}}})
    render = next(cache for cache in engine._caches if cache.name == "render")
    steady = flyte_pod({"group": "db-password", "group_version": "3"})
    for _ in range(2):
        engine.review(admission_review(steady))
    kept = render.stats()
    assert kept.entries == 1
    for n in range(3000):  # about 8 MiB of renders were they kept: 8 budgets
        engine.review(admission_review(flyte_pod({"group": f"one-off-{n}", "group_version": "1"})))
    after = render.stats()
    # A one-off key whose bit another key set is kept at first sight: about 1% of 3000 here.
    assert after.entries < 100 and after.evictions == 0
    hits: list[bool] = []
    lookup = engine._composer.render_cached

    def counted(key: Any) -> Any:
        hits.append(render.get(key) is not None)
        return lookup(key)

    engine._composer.render_cached = counted
    engine.review(admission_review(steady))
    assert hits == [True], "the steady task's render was served from the cache"


def test_the_rule_and_render_caches_are_asked_from_an_annotations_second_sight() -> None:
    """An annotation at its first sight (the decode cache's doorkeeper) is decoded, given
    its rule and rendered without asking the rule and render caches, which keep nothing of
    it; at its second sight they keep what they compute, and the third is served by them."""
    engine = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 0}}})
    caches = {cache.name: cache for cache in engine._caches}
    asked: list[Any] = []
    lookup = engine._composer.render_cached

    def counted(key: Any) -> Any:
        asked.append(caches["render"].get(key) is not None)
        return lookup(key)

    engine._composer.render_cached = counted
    for n in range(20):
        pod = flyte_pod(*[{"group": f"new-{n}-{i}", "group_version": "1"} for i in range(3)])
        engine.review(admission_review(pod))
    assert asked == [] and caches["rule"].stats().entries == caches["render"].stats().entries == 0
    task = flyte_pod(
        {"group": "db-password", "group_version": "3"}, {"group": "api-key", "group_version": "1"}
    )
    for _ in range(3):
        engine.review(admission_review(task))
    assert asked == [False, False, True, True], "kept at the second sight, served at the third"
    assert caches["rule"].stats().entries == caches["render"].stats().entries == 2


def test_with_a_decode_cache_too_small_for_a_doorkeeper_the_rule_and_render_caches_have_their_own() -> None:
    """Such a decode cache cannot tell an annotation's first sight: the other two keep at
    their own key's second sight, not every never-seen secret."""
    engine = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 0, "decodeCacheBytes": 0}}})
    caches = {cache.name: cache for cache in engine._caches}
    for n in range(20):
        engine.review(admission_review(flyte_pod({"group": f"new-{n}", "group_version": "1"})))
    assert caches["rule"].stats().entries == caches["render"].stats().entries == 0
    task = flyte_pod({"group": "db-password", "group_version": "3"})
    for _ in range(2):
        engine.review(admission_review(task))
    assert caches["rule"].stats().entries == caches["render"].stats().entries == 1


def test_the_encoder_keeps_an_item_whose_text_comes_again_not_one_whose_id_does() -> None:
    from secretpatch.core.admission import PatchEncoder

    encoder = PatchEncoder()
    for n in range(2000):  # each new item often takes the id of the one just freed
        encoder([{"op": "add", "path": "/spec/initContainers/-", "value": {"name": f"c{n}"}}])
    assert encoder.cache.stats().entries < 40, "only a text whose bit another set (about 1 in 200)"
    kept = {"name": "gcp-pull-secret-0", "image": "x"}
    texts = [encoder([{"op": "add", "path": "/spec/initContainers/-", "value": kept}]) for _ in range(3)]
    assert (
        texts[0]
        == texts[2]
        == b'[{"op":"add","path":"/spec/initContainers/-","value":'
        + (b'{"name":"gcp-pull-secret-0","image":"x"}}]')
    )
    assert encoder.cache.get(id(kept)) == (kept, texts[0][53:-2].decode())


def test_approx_size_once_counts_a_shared_part_once() -> None:
    """A plan's item shapes share the constant parts of each fragment's shape: counted once
    per reference they made a plan five times its size."""
    import sys

    from secretpatch.core.budget import approx_size

    part = ("volumeMounts", ("list", (("name", "gcp-secret-vol"), ("mountPath", "/etc/flyte/secrets"))))
    shapes = tuple((("name", f"c-{n}"), part) for n in range(10))
    assert approx_size(shapes, once=True) < approx_size(shapes)
    # (the interned "name" is counted once too)
    assert approx_size(shapes, once=True) <= approx_size(shapes) - 9 * approx_size(part)
    assert approx_size(shapes, once=True) >= sum(sys.getsizeof(shape) for shape in shapes)
    tree = {"a": [1, "x", {"b": ("y", 2.5)}], "c": None}  # no object referenced twice
    assert approx_size(tree, once=True) == approx_size(tree)
