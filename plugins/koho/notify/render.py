"""Render a message's Japanese HTML body and its plain-text alternative.

The HTML comes from an autoescaped Jinja template (residents' comments and platform answers are
untrusted); the text part is derived from the rendered HTML with inscriptis, which keeps tables
readable, so every template is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from inscriptis import get_text
from markupsafe import Markup

from koho import secrets
from koho.notify.message import Message, NotifyError
from koho.templating import html_environment


@dataclass(frozen=True)
class Rendered:
    html: str
    text: str


def render(
    message: Message,
    *,
    inline: Collection[str],
    notices: Sequence[str] = (),
    template: str | None = None,
    **extra: object,
) -> Rendered:
    """The bodies of one mail: images named in ``inline`` are shown, the others are described.

    ``notices`` (plain sentences) open the body: what was split off, what could not be sent.
    Secrets that reached a context value by mistake are redacted from both bodies.
    """
    names = {image.name: image for image in message.images}
    context = {
        **message.context,
        **extra,
        "subject": message.subject,
        "inline_image": _image_tag(message.id, names, set(inline)),
    }
    html = html_environment().get_template(template or message.template).render(**context)
    html = secrets.redact(_with_notices(html, notices))
    return Rendered(html=html, text=secrets.redact(get_text(html).strip() + "\n"))


def _image_tag(message_id: str, images: dict, inline: set[str]) -> Callable[..., Markup]:
    def inline_image(name: str, alt: str = "", width: int | None = None) -> Markup:
        if name not in images:
            raise NotifyError(f"{message_id}: the template shows image '{name}', which the message does not carry")
        if name in inline:
            if width:
                return Markup('<img src="cid:{}" alt="{}" width="{}">').format(name, alt, int(width))
            return Markup('<img src="cid:{}" alt="{}">').format(name, alt)
        return Markup("<p>［図「{}」は添付ファイル {} です］</p>").format(alt or name, images[name].filename)

    return inline_image


def _with_notices(html: str, notices: Sequence[str]) -> str:
    if not notices:
        return html
    block = Markup('<div style="border:1px solid #c60;padding:6px;margin:6px 0">{}</div>').format(
        Markup("").join(Markup("<p>{}</p>").format(n) for n in notices)
    )
    at = html.find(">", html.find("<body")) + 1 if "<body" in html else 0
    return html[:at] + str(block) + html[at:]
