"""Collection: incremental readers over the platform hooks, and the budgets every process shares.

Submodules are imported where needed: :mod:`koho.platforms.base` imports
:mod:`koho.collection.budgets`, and the readers import the platforms.
"""
