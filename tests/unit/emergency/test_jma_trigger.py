"""JmaFeedTrigger: serialisable, fires once with new warnings, survives 5xx/time-outs/bad bulletins.

The trigger runs for real against the sandbox's feed in the test's event loop. Nothing sleeps
for a guessed time: tests wait for the sandbox to have answered a number of feed requests, and
await the trigger's next event with a time-out.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable

import pytest

from koho.emergency.jma import Watch, draft_key, parse_document, relevant
from koho.emergency.triggers import JmaFeedTrigger
from sandbox.platforms.jma import Entry, JmaState, jma_state, publish_sample, sample_bytes

CITY = "1229900"
KINDS = ["大雨特別警報", "大雨警報", "洪水警報", "暴風警報"]
FEED = "/jma/developer/xml/feed/extra.xml"
EVENT_TIMEOUT = 10.0


def make_trigger(sandbox, **overrides) -> JmaFeedTrigger:
    kwargs = {
        "feed_url": sandbox.url + FEED,
        "area_codes": [CITY],
        "kinds": KINDS,
        "poll_interval": 0.02,
        "request_timeout": 2.0,
        **overrides,
    }
    return JmaFeedTrigger(**kwargs)


async def wait_for(condition: Callable[[], bool], timeout: float = EVENT_TIMEOUT) -> None:
    """Wait until ``condition()`` holds (checked every few milliseconds), or fail."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def first_event(trigger: JmaFeedTrigger):
    events = trigger.run()
    try:
        return await asyncio.wait_for(anext(events), EVENT_TIMEOUT)
    finally:
        await events.aclose()


def feed_polls(sandbox) -> int:
    return jma_state(sandbox.state).feed_requests


def jma_requests(sandbox) -> int:
    """Requests the sandbox answered under /jma (its request counters)."""
    return sum(c["count"] for c in sandbox.admin("GET", "/stats")["counts"] if c["platform"] == "jma")


def expected_key(name: str) -> str:
    """The draft key of the city's warning in sample ``name``, computed without the trigger."""
    (warning,) = relevant(parse_document(sample_bytes(name), "x"), Watch((CITY,), tuple(KINDS), ("発表",)))
    return draft_key(warning)


async def caught_up(sandbox) -> dict:
    """The state after reading the initial feed: what an operator would defer with next."""
    event = await first_event(make_trigger(sandbox))
    return event.payload["state"]


# -- serialisation -----------------------------------------------------------------------------


def test_serialize_round_trip_is_json_safe_and_importable(sandbox):
    trigger = make_trigger(
        sandbox,
        seen_keys=["a", "b"],
        seen_documents=["u"],
        etag='"x"',
        last_modified="Wed, 09 Jul 2025 20:12:05 GMT",
        statuses=("発表", "解除"),
    )
    path, kwargs = trigger.serialize()
    assert path == "koho.emergency.triggers.JmaFeedTrigger"
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    rebuilt = cls(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["statuses"] == ["発表", "解除"] and kwargs["etag"] == '"x"'


def test_airflow_stores_and_rebuilds_it(sandbox):
    """The way the scheduler stores a deferral (a Trigger row) and the triggerer rebuilds it."""
    from airflow.models.trigger import Trigger

    trigger = make_trigger(sandbox, seen_keys=["jma:1229900:20250709T201200Z:0"], etag='"x"')
    row = Trigger.from_object(trigger)
    module, _, name = row.classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**row.kwargs)
    assert rebuilt.serialize() == trigger.serialize()


def test_seen_lists_are_bounded_and_inputs_checked(sandbox):
    trigger = make_trigger(sandbox, seen_keys=[f"k{i}" for i in range(50)], max_seen=10)
    assert trigger.serialize()[1]["seen_keys"] == [f"k{i}" for i in range(40, 50)]
    with pytest.raises(ValueError, match="feed_url"):
        make_trigger(sandbox, feed_url="file:///etc/passwd")
    with pytest.raises(ValueError, match="area_codes"):
        make_trigger(sandbox, area_codes=[])


def test_from_settings(settings):
    trigger = JmaFeedTrigger.from_settings(settings, etag='"e"', seen_keys=["k"])
    kwargs = trigger.serialize()[1]
    assert kwargs["feed_url"] == settings.feed_url and kwargs["area_codes"] == settings.area_codes
    assert kwargs["poll_interval"] == settings.poll_interval_seconds and kwargs["seen_keys"] == ["k"]


# -- running against the sandbox -------------------------------------------------------------------


async def test_first_run_reports_what_the_feed_holds_for_the_city(sandbox):
    event = await first_event(make_trigger(sandbox))
    payload = json.loads(json.dumps(event.payload))  # JSON-safe
    assert payload["kind"] == "jma_warnings"
    # heavy rain is listed twice and the storm is cancelled; the drill never counts
    (warning,) = payload["warnings"]
    assert warning["key"] == expected_key("heavy_rain")
    assert warning["area_code"] == CITY and [k["name"] for k in warning["kinds"]] == ["大雨警報", "洪水警報"]
    assert warning["severity"] == "high"
    (cancellation,) = payload["cancellations"]
    assert cancellation["cancelled_url"].endswith("_VPWW54_120000.xml")
    state = payload["state"]
    assert state["seen_keys"] == [warning["key"]] and len(state["seen_documents"]) == 4
    assert state["etag"] and state["last_modified"]


async def test_a_new_bulletin_while_polling_fires_exactly_one_event(sandbox):
    state = await caught_up(sandbox)
    events = make_trigger(sandbox, **state).run()
    next_event = asyncio.ensure_future(anext(events))
    polls = feed_polls(sandbox)
    await wait_for(lambda: feed_polls(sandbox) >= polls + 2)  # it is polling, and nothing fired
    assert not next_event.done()
    publish_sample(sandbox.state, "special")
    event = await asyncio.wait_for(next_event, EVENT_TIMEOUT)
    (warning,) = event.payload["warnings"]
    assert warning["key"] == expected_key("special")
    assert [k["name"] for k in warning["kinds"]] == ["大雨特別警報"] and warning["severity"] == "critical"
    with pytest.raises(StopAsyncIteration):  # one event, then the trigger is done
        await asyncio.wait_for(anext(events), EVENT_TIMEOUT)


async def test_5xx_and_timeouts_do_not_end_the_trigger(sandbox):
    state = await caught_up(sandbox)
    sandbox.fault("jma", "server_error", count=2)
    sandbox.fault("jma", "slow", count=1, delay=1.0)
    events = make_trigger(sandbox, request_timeout=0.3, **state).run()
    next_event = asyncio.ensure_future(anext(events))
    polls = feed_polls(sandbox)
    await wait_for(lambda: feed_polls(sandbox) >= polls + 4)  # 503, 503, time-out, then 304s
    assert not next_event.done()
    assert sandbox.admin("GET", "/faults") == []  # every injected fault was served
    publish_sample(sandbox.state, "special")
    event = await asyncio.wait_for(next_event, EVENT_TIMEOUT)
    assert [w["key"] for w in event.payload["warnings"]] == [expected_key("special")]
    await events.aclose()


async def test_bad_bulletins_are_reported_and_do_not_hide_good_ones(sandbox):
    state = await caught_up(sandbox)
    for name in ("malformed", "entity_bomb", "special"):
        publish_sample(sandbox.state, name)
    event = await first_event(make_trigger(sandbox, **state))
    assert [w["key"] for w in event.payload["warnings"]] == [expected_key("special")]
    problems = event.payload["problems"]
    assert len(problems) == 2
    assert any("224100_0_VPWW54" in p and "malformed XML" in p for p in problems)
    assert any("224200_0_VPWW54" in p and "DTDs" in p for p in problems)


async def test_running_twice_gives_the_same_event_and_seen_keys_never_fire_again(sandbox):
    trigger = make_trigger(sandbox)
    _, kwargs = trigger.serialize()
    one = await first_event(JmaFeedTrigger(**kwargs))
    two = await first_event(JmaFeedTrigger(**kwargs))
    assert one.payload == two.payload
    # a third run that knows the keys (but not the documents or the etag) finds nothing new
    poller = JmaFeedTrigger(**{**kwargs, "seen_keys": one.payload["state"]["seen_keys"]}).poller()
    async with trigger.session() as session:
        result = await poller.poll(session)
        assert result.warnings == [] and not result.not_modified
        assert (await poller.poll(session)).not_modified  # the next poll is a conditional 304


async def test_duplicate_entries_are_fetched_once(sandbox):
    state = await caught_up(sandbox)
    publish_sample(sandbox.state, "special")
    publish_sample(sandbox.state, "special")
    poller = make_trigger(sandbox, **state).poller()
    before = jma_requests(sandbox)
    async with make_trigger(sandbox).session() as session:
        result = await poller.poll(session)
    assert jma_requests(sandbox) - before == 2  # the feed, then the bulletin once although listed twice
    assert len(result.warnings) == 1


async def test_a_bulletin_that_cannot_be_fetched_is_retried_then_reported(sandbox):
    state = await caught_up(sandbox)
    js: JmaState = jma_state(sandbox.state)
    publish_sample(sandbox.state, "special")
    with js.lock:  # list a document the server does not have (deleted between listing and fetch)
        js.feeds["extra"].insert(
            0, Entry("gone.xml", "気象警報・注意報（Ｈ２７）", "銚子地方気象台", js.feeds["extra"][0].updated, "")
        )
    poller = make_trigger(sandbox, **state).poller()
    async with make_trigger(sandbox).session() as session:
        first = await poller.poll(session)
        assert [w["key"] for w in first.warnings] == [expected_key("special")] and first.problems == []
        assert poller.etag == state["etag"]  # not advanced: the feed must be read again for gone.xml
        second = await poller.poll(session)
        assert second.warnings == [] and second.problems == []
        third = await poller.poll(session)
    assert len(third.problems) == 1 and "gone.xml" in third.problems[0] and "HTTP 404" in third.problems[0]
    assert poller.etag != state["etag"] and "gone.xml" in poller.seen_documents.as_list()[-1]


async def test_a_feed_url_refused_again_and_again_ends_with_an_error_event(sandbox):
    event = await first_event(make_trigger(sandbox, feed_url=sandbox.url + "/jma/developer/xml/feed/nothing.xml"))
    assert event.payload["kind"] == "error"
    assert "nothing.xml" in event.payload["message"] and "emergency.yaml" in event.payload["message"]


async def test_an_unreachable_server_is_transient(sandbox):
    poller = make_trigger(sandbox, feed_url="http://127.0.0.1:9/jma/developer/xml/feed/extra.xml").poller()
    async with make_trigger(sandbox, request_timeout=1.0).session() as session:
        result = await poller.poll(session)
    assert result.fatal is None and result.warnings == []
