"""The UI plugin as Airflow sees it: discovered by the plugin manager from a plugins folder,
its FastAPI app mounted by the api-server's own code, its nav entry valid for the UI, and the
plugin file importable without any database."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
PLUGIN_FILE = PLUGINS / "koho_ui_plugin.py"


def _clear_plugin_caches() -> None:
    from airflow import plugins_manager

    for name in ("_get_plugins", "_get_ui_plugins", "get_fastapi_plugins", "get_flask_plugins"):
        cached = getattr(plugins_manager, name, None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()


@pytest.fixture
def plugins_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plugins folder holding the real plugin file (the real folder's library code stays out)."""
    from airflow import settings

    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(PLUGIN_FILE, folder / PLUGIN_FILE.name)
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(folder))
    _clear_plugin_caches()
    yield folder
    _clear_plugin_caches()


def test_plugin_file_imports_without_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    from koho.ledger.db import Ledger

    def no_database(*_args, **_kwargs):
        raise AssertionError("the plugin must not open the ledger at import or registration")

    monkeypatch.setattr(Ledger, "from_airflow", classmethod(no_database))
    spec = importlib.util.spec_from_file_location("koho_ui_plugin_probe", PLUGIN_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.KohoUIPlugin()
    assert plugin.name == "koho_ui"
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/koho" and isinstance(app["app"], FastAPI)


def test_plugin_file_imports_only_from_koho_ui() -> None:
    import ast

    tree = ast.parse(PLUGIN_FILE.read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules - {"__future__"} == {"koho.ui.plugin"}


def test_airflow_discovers_the_app_and_the_nav_entry(plugins_folder: Path) -> None:
    from airflow import plugins_manager
    from airflow.api_fastapi.app import init_plugins
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    plugins, errors = plugins_manager._get_plugins()
    assert not {k: v for k, v in errors.items() if "koho" in k.lower()}
    koho = [p for p in plugins if p.name == "koho_ui"]
    assert len(koho) == 1 and str(koho[0].source).endswith("koho_ui_plugin.py")

    apps, _middlewares = plugins_manager.get_fastapi_plugins()
    (registered,) = [a for a in apps if a["name"] == "Koho"]
    assert registered["url_prefix"] == "/koho"

    views, _react_apps = plugins_manager._get_ui_plugins()
    (view,) = [v for v in views if v["name"] == "Koho calendar"]
    parsed = ExternalViewResponse.model_validate(view)
    assert parsed.destination == "nav" and parsed.url_route == "koho-calendar"
    assert parsed.href == "koho/calendar", "relative, so that it follows [api] base_url"

    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}
    assert info["koho_ui"]["external_views"][0]["href"] == "koho/calendar"

    server = FastAPI()
    init_plugins(server)  # the api-server's own mounting code
    client = TestClient(server)
    assert client.get("/koho/icon.svg").headers["content-type"].startswith("image/svg+xml")
    assert client.get("/koho/calendar").status_code == 401, "the calendar needs an Airflow login"


def test_the_real_plugins_folder_exposes_no_library_module_to_the_plugin_loader() -> None:
    """Airflow executes every .py file under plugins/ as a top-level module unless .airflowignore
    says otherwise: koho/secrets.py would then replace the standard library's ``secrets`` in
    every Airflow process. Only top-level plugin files may be scanned."""
    from airflow._shared.module_loading import find_path_from_directory

    scanned = [Path(p).relative_to(PLUGINS) for p in find_path_from_directory(str(PLUGINS), ".airflowignore")]
    library = sorted(str(p) for p in scanned if p.suffix == ".py" and len(p.parts) > 1)
    assert not library, f"add 'koho/' to plugins/.airflowignore; the loader would import {library[:5]}..."
    assert Path("koho_ui_plugin.py") in scanned
