"""One module per platform: a hook that speaks the platform's real HTTP API.

:mod:`koho.platforms.registry` maps platform names to hook classes; operators and DAGs look
hooks up there, so adding a platform is one module plus one registry line.
"""
