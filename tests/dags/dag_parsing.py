"""Parsing DAG files the way the tests here need: with the network and SQLite forbidden."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest


def parse_without_io(dag_folder: Path):
    """A DagBag of ``dag_folder`` (a folder or one file), parsed with sockets and SQLite connects
    forbidden: parsing must not do I/O."""
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise AssertionError(f"DAG parsing attempted I/O: {args[:2]}")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(sqlite3, "connect", refuse)
    try:
        return DagBag(dag_folder=str(dag_folder), safe_mode=False)  # examples are off via AIRFLOW__CORE__LOAD_EXAMPLES
    finally:
        mp.undo()
