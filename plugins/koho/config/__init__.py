"""Koho's configuration (include/config): schema, loading with file/line/field errors."""

from koho.config.loader import KohoConfig, config_dir, include_dir, load_config
from koho.config.schema import AccountConfig, Caps, Department, Policy, QuietHours, ReadQuotaConfig, WriteBudgetConfig

__all__ = [
    "AccountConfig",
    "Caps",
    "Department",
    "KohoConfig",
    "Policy",
    "QuietHours",
    "ReadQuotaConfig",
    "WriteBudgetConfig",
    "config_dir",
    "include_dir",
    "load_config",
]
