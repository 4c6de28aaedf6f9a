"""What the city posts about: areas, kinds, real bulletins only, cancellations, one key per warning."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from koho.emergency.jma import AreaWarning, WarningKind, Watch, draft_key, relevant, select_new, severity_of

CITY, NEIGHBOUR = "1229900", "1229800"


def test_only_the_city_area_and_the_configured_kinds_are_relevant(bulletin, settings):
    found = relevant(bulletin("heavy_rain"), settings)
    assert len(found) == 1
    warning = found[0]
    assert (warning.area_code, warning.area_name) == (CITY, "こほ市")
    assert warning.kind_names == ("大雨警報", "洪水警報")  # 雷注意報 is not in the city's kinds
    assert warning.severity == "high"
    assert warning.document_url.endswith("heavy_rain.xml")


def test_several_area_codes(bulletin, settings):
    both = settings.model_copy(update={"area_codes": [CITY, NEIGHBOUR]})
    assert [w.area_code for w in relevant(bulletin("heavy_rain"), both)] == [CITY, NEIGHBOUR]


def test_continuing_kinds_are_not_posted_again_unless_asked(bulletin, settings):
    storm = relevant(bulletin("storm"), settings)
    assert [w.kind_names for w in storm] == [("暴風警報",)]  # 大雨警報/洪水警報 continue (継続)
    with_continuing = Watch((CITY,), tuple(settings.kinds), ("発表", "継続"))
    assert relevant(bulletin("storm"), with_continuing)[0].kind_names == ("暴風警報", "大雨警報", "洪水警報")


def test_drills_are_never_relevant(bulletin, settings):
    drill = bulletin("drill")
    assert drill.areas and drill.areas[0].kinds[0].name == "大雨特別警報"
    assert relevant(drill, settings) == []
    assert relevant(replace(drill, status="試験"), settings) == []
    assert relevant(replace(drill, status="通常"), settings)  # the same content, for real, is


def test_a_cancellation_is_never_a_post_and_a_correction_is(bulletin, settings):
    assert relevant(bulletin("storm_cancel"), settings) == []
    assert relevant(replace(bulletin("heavy_rain"), info_type="取消"), settings) == []
    corrected = relevant(replace(bulletin("heavy_rain"), info_type="訂正"), settings)
    assert corrected and corrected[0].info_type == "訂正"


def test_liftings_when_the_city_announces_them(bulletin, settings):
    assert relevant(bulletin("all_clear"), settings) == []
    lifted = relevant(bulletin("all_clear"), settings.model_copy(update={"statuses": ["発表", "解除"]}))
    assert lifted[0].kind_names == ("大雨警報", "洪水警報") and lifted[0].severity == "advisory"


def test_severity():
    assert severity_of(WarningKind("大雨特別警報", "33", "発表")) == "critical"
    assert severity_of(WarningKind("暴風警報", "05", "発表")) == "high"
    assert severity_of(WarningKind("大雨注意報", "10", "発表")) == "advisory"
    assert severity_of(WarningKind("大雨特別警報", "33", "解除")) == "advisory"


def test_a_cancellation_in_the_same_batch_withdraws_the_cancelled_bulletin(bulletin, settings):
    batch = [bulletin(n) for n in ("drill", "storm_cancel", "storm", "heavy_rain")]
    selection = select_new(batch, settings)
    assert [w.kind_names for w in selection.warnings] == [("大雨警報", "洪水警報")]  # no 暴風警報
    (cancellation,) = selection.cancellations
    assert cancellation.cancelled_url.endswith("storm.xml")
    assert cancellation.document_url.endswith("storm_cancel.xml")


def test_a_cancellation_only_withdraws_the_latest_earlier_bulletin(bulletin, settings):
    selection = select_new([bulletin("heavy_rain"), bulletin("storm"), bulletin("storm_cancel")], settings)
    assert [w.document_url.rsplit("/", 1)[1] for w in selection.warnings] == ["heavy_rain.xml"]


def test_a_duplicate_entry_gives_one_warning(bulletin, settings):
    heavy = bulletin("heavy_rain")
    copy = replace(heavy, url=heavy.url.replace("VPWW54", "VPWW53").replace("heavy_rain", "copy"))
    selection = select_new([heavy, heavy, copy], settings)
    assert len(selection.warnings) == 1


def test_seen_keys_never_come_back(bulletin, settings):
    first = select_new([bulletin("heavy_rain")], settings)
    keys = [draft_key(w) for w in first.warnings]
    again = select_new([bulletin("heavy_rain"), bulletin("special")], settings, keys)
    assert [w.kind_names for w in again.warnings] == [("大雨特別警報",)]


def test_draft_key_is_stable_and_distinguishes_what_matters(bulletin, settings):
    (warning,) = relevant(bulletin("heavy_rain"), settings)
    key = draft_key(warning)
    assert key == draft_key(relevant(bulletin("heavy_rain"), settings)[0])  # a re-parse
    assert key == draft_key(AreaWarning.from_dict(warning.to_dict()))  # through JSON
    assert key == draft_key(replace(warning, document_url="https://elsewhere/x.xml", headline="別の見出し"))
    assert key.startswith(f"jma:{CITY}:20250709T201200Z:")
    assert draft_key(replace(warning, report_time=warning.report_time + timedelta(minutes=1))) != key
    assert draft_key(replace(warning, area_code=NEIGHBOUR)) != key
    assert draft_key(replace(warning, kinds=warning.kinds[:1])) != key
    assert draft_key(replace(warning, event_id="2025071005120")) != key
    # the same warning read from a bulletin with another UTC offset is the same warning
    jst = warning.report_time.astimezone(ZoneInfo("Asia/Tokyo"))
    assert draft_key(replace(warning, report_time=jst)) == key
