"""The review process for large bodies: same answers as the engine in the server's process,
bounded queue, a new process when one dies, and no other configuration than the server's."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from secretpatch import Engine
from secretpatch.webhook.bodies import BodyReader, Overloaded
from secretpatch.webhook.worker import REVIEW_NICENESS, ProcessReviews

from .conftest import admission_review, flyte_pod

pytestmark = pytest.mark.slow


def large_review(name: str = "big") -> bytes:
    env = [{"name": f"E{i}", "value": "v" * 20} for i in range(2000)]
    pod = flyte_pod(
        {"group": name, "group_version": "1"}, containers=[{"name": "c", "image": "x", "env": env}]
    )
    return json.dumps(admission_review(pod)).encode()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("gcpSecretManager: {sidecarImage: 'img:1'}\n")
    return path


def test_a_large_body_gets_the_answer_the_servers_own_engine_gives(config: Path) -> None:
    body = large_review()
    expected = BodyReader(Engine.from_config(config)).review_body(body, time.monotonic() + 30)

    async def main() -> Any:
        reviews = ProcessReviews(config)
        try:
            await reviews.start()
            return await reviews(body, time.monotonic() + 30)
        finally:
            reviews.close()

    summary = run(main())
    assert summary == expected and summary.result == "patched"
    assert b"img:1" in base64.b64decode(json.loads(summary.response)["response"]["patch"])


def test_beyond_its_byte_budget_a_large_review_is_refused_at_once(config: Path) -> None:
    body = large_review()

    async def main() -> list[Any]:
        reviews = ProcessReviews(config, max_queued_bytes=2 * len(body))
        try:
            await reviews.start()
            calls = [reviews(large_review(f"q{i}"), time.monotonic() + 30) for i in range(3)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            results.append(await reviews(large_review("after"), time.monotonic() + 30))  # given back
            return results
        finally:
            reviews.close()

    results = run(main())
    assert [type(r).__name__ for r in results] == ["Summary", "Summary", "Overloaded", "Summary"]


def test_the_review_process_yields_the_cpu_to_the_event_loop(config: Path) -> None:
    """Where the two share a CPU, hostile large bodies must not slow the health checks and
    ordinary reviews that the event loop answers."""

    async def main() -> int:
        reviews = ProcessReviews(config)
        try:
            await reviews.start()
            (child,) = reviews._pool._processes
            return os.getpriority(os.PRIO_PROCESS, child)
        finally:
            reviews.close()

    assert run(main()) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + REVIEW_NICENESS)


def test_a_review_process_that_dies_is_replaced_once(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[list[Any], Any]:
        reviews = ProcessReviews(config)
        try:
            await reviews.start()
            (child,) = reviews._pool._processes  # the one review process
            os.kill(child, signal.SIGKILL)
            await asyncio.sleep(0.5)
            first = await asyncio.gather(
                *(reviews(large_review(f"d{i}"), time.monotonic() + 30) for i in range(2)),
                return_exceptions=True,
            )
            pool = reviews._pool
            after = await reviews(large_review("after"), time.monotonic() + 30)
            assert reviews._pool is pool, "the working pool is kept"
            return first, after
        finally:
            reviews.close()

    first, after = run(main())
    assert any(isinstance(r, Overloaded) for r in first)
    assert [r.message for r in caplog.records] == ["the review process stopped; starting a new one"]
    assert after.result == "patched"


def test_a_config_changed_on_disk_since_start_up_is_not_used(config: Path) -> None:
    async def main() -> Any:
        reviews = ProcessReviews(config)
        config.write_text("gcpSecretManager: {sidecarImage: 'img:2'}\n")
        try:
            await reviews.start()
            return await reviews(large_review(), time.monotonic() + 30)
        finally:
            reviews.close()

    with pytest.raises(Overloaded, match="review process stopped"):
        run(main())


def _engine_is_frozen() -> bool:
    """In the review process: its engine is in no generation the collector walks."""
    import gc

    from secretpatch.webhook import worker

    return gc.get_freeze_count() > 0 and not any(o is worker._reader for o in gc.get_objects())


def test_the_review_process_and_the_server_leave_start_up_objects_out_of_collections(config: Path) -> None:
    """gc.freeze after start-up: a full collection walks only what came since (a 50-secret
    review served one at a time had 15-60 ms collections in its p99 without it)."""
    import gc

    from secretpatch.webhook import run as served

    async def main() -> bool:
        reviews = ProcessReviews(config)
        try:
            await reviews.start()
            return await asyncio.wrap_future(reviews._pool.submit(_engine_is_frozen))
        finally:
            reviews.close()

    assert run(main()) is True, "the child froze its engine, rules and templates"
    assert gc.get_freeze_count() == 0
    try:
        served._freeze_heap()
        assert gc.get_freeze_count() > 15_000  # a bare interpreter tracks about 8,000
    finally:
        gc.unfreeze()
