"""Koho: social media operations for city halls, on Apache Airflow 3.

The library lives here; DAG files in ``dags/`` only wire its pieces together.
"""

__version__ = "0.1.0"
