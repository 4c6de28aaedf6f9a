"""Koho's connection types as Airflow learns them: one ``koho_<platform>`` type per hook, forms that
hide what a city must not see in clear and validate against Airflow's own provider schema.

An operator creates every account's connection from these forms (Admin -> Connections); a type that
is missing, points at the wrong hook or shows a secret in clear is found here, not in production.
"""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

from koho.platforms.base import PlatformHook
from koho.platforms.catalog import PLATFORMS
from koho.provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {f"koho_{p}" for p in ("x", "facebook", "instagram", "threads", "line", "youtube", "bluesky", "mastodon")}
#: Extra-field names that hold a secret by any platform's convention (the token itself is the password).
SECRET_NAME = re.compile(r"secret|api_key|refresh_token|password")


def connection_types() -> dict[str, dict]:
    return {c["connection-type"]: c for c in get_provider_info()["connection-types"]}


def test_the_entry_point_names_this_function():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["apache_airflow_provider"] == {
        "provider_info": "koho.provider_info:get_provider_info"
    }


def test_all_eight_connection_types_are_listed_once():
    listed = [c["connection-type"] for c in get_provider_info()["connection-types"]]
    assert sorted(listed) == sorted(EXPECTED) and len(listed) == len(set(listed))


def test_provider_info_is_valid_for_airflow():
    """Airflow validates provider info against this schema when it discovers providers."""
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(get_provider_info(), schema)


@pytest.mark.parametrize("conn_type", sorted(EXPECTED))
def test_each_type_names_an_importable_hook_of_that_type(conn_type):
    entry = connection_types()[conn_type]
    module, _, name = entry["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), name)
    assert issubclass(hook, PlatformHook)
    assert hook.conn_type == conn_type
    assert entry["hook-name"] == hook.hook_name


@pytest.mark.parametrize("conn_type", sorted(EXPECTED))
def test_secrets_are_sensitive_and_nothing_else_is(conn_type):
    entry = connection_types()[conn_type]
    info = PLATFORMS[conn_type.removeprefix("koho_")]
    behaviour = entry["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "port"}
    # Airflow masks the password field itself; the form must say it holds the token.
    assert behaviour["relabeling"]["password"] == "Access token"
    fields = entry["conn-fields"]
    sensitive = {name for name, spec in fields.items() if spec.get("sensitive")}
    assert sensitive == set(info.secret_extra_fields)
    assert {name for name in fields if SECRET_NAME.search(name)} <= sensitive  # a new secret field is marked
    assert all(spec["schema"]["type"] == ["string", "null"] for spec in fields.values())


def test_the_platforms_that_carry_extra_secrets_mark_them():
    """The fields that would leak an account if shown in clear, by platform."""
    sensitive = {
        t: {n for n, s in c["conn-fields"].items() if s.get("sensitive")} for t, c in connection_types().items()
    }
    assert sensitive["koho_x"] == {"consumer_secret", "access_token_secret"}
    assert sensitive["koho_line"] == {"channel_secret"}
    assert sensitive["koho_youtube"] == {"api_key", "refresh_token", "client_secret"}
