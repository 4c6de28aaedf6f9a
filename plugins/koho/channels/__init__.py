"""Traditional channels (policy P11): the city website and the printed PR newsletter.

Social platforms are reached through their hooks in :mod:`koho.platforms`; these two channels
are files Koho writes itself (static pages and a feed for the web server, a monthly workbook
for the newsletter's editors), so they need no connection and no retry logic of their own.
"""

from __future__ import annotations

from koho.channels._common import ChannelError, is_web_url

__all__ = ["ChannelError", "is_web_url"]
