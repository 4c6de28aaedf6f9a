"""Koho's sandbox: a local stand-in for the social platforms, speaking their real HTTP contracts.

One FastAPI app serves every platform under its own prefix (``/x``, ``/facebook``, ...), keeps
state so that reads reflect writes, and injects faults on demand through ``/_admin``.
"""
