"""Airflow discovers Koho's UI plugin here (the calendar view); the code lives in koho.ui."""

from __future__ import annotations

from koho.ui.plugin import KohoUIPlugin

__all__ = ["KohoUIPlugin"]
