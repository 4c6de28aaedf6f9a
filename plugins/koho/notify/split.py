"""Keep every mail under the size limit: split a big message rather than send 20 MB or drop it.

The first mail carries the body with as many inline images and attachments as fit; an image
that does not fit is described in the body and sent as an attachment of a follow-up mail,
and follow-up mails ("続き 2/3") carry the remaining files, each under the limit. A file too big
for any mail is named in the first mail's body and in the send report: never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from koho.notify.message import Attachment, InlineImage

#: A mail with the given inline images and attachments, as sized on the wire.
Measure = Callable[[Sequence[InlineImage], Sequence[Attachment]], int]


@dataclass(frozen=True)
class MailPart:
    """What one mail of a message carries; ``index`` counts from 0, the body is in part 0."""

    index: int
    images: tuple[InlineImage, ...] = ()
    attachments: tuple[Attachment, ...] = ()


@dataclass
class SplitPlan:
    parts: list[MailPart]
    #: Images shown as attachments of follow-up mails instead of inline.
    moved_images: list[InlineImage] = field(default_factory=list)
    #: Files bigger than a whole mail may be: not sent, and said so.
    too_big: list[Attachment] = field(default_factory=list)

    @property
    def split(self) -> bool:
        return len(self.parts) > 1 or bool(self.moved_images or self.too_big)


def plan_parts(
    images: Sequence[InlineImage],
    attachments: Sequence[Attachment],
    *,
    limit: int,
    first: Measure,
    follow_up: Measure,
) -> SplitPlan:
    """Place images and files into mails of at most ``limit`` bytes (first fit, in order).

    ``first`` measures the body mail, ``follow_up`` a continuation mail; both are called with
    candidate contents, so the estimate is the real encoded size, headers and base64 included.
    """
    if first(images, attachments) <= limit:
        return SplitPlan([MailPart(0, tuple(images), tuple(attachments))])
    plan = SplitPlan([])
    kept_images: list[InlineImage] = []
    for image in images:
        if first([*kept_images, image], []) <= limit:
            kept_images.append(image)
        else:
            plan.moved_images.append(image)
    kept_files: list[Attachment] = []
    rest: list[Attachment] = []
    for attachment in attachments:
        if first(kept_images, [*kept_files, attachment]) <= limit:
            kept_files.append(attachment)
        else:
            rest.append(attachment)
    plan.parts.append(MailPart(0, tuple(kept_images), tuple(kept_files)))
    follow_ups: list[list[Attachment]] = []
    for attachment in [image.as_attachment() for image in plan.moved_images] + rest:
        if follow_up([], [attachment]) > limit:
            plan.too_big.append(attachment)
            continue
        for bucket in follow_ups:
            if follow_up([], [*bucket, attachment]) <= limit:
                bucket.append(attachment)
                break
        else:
            follow_ups.append([attachment])
    plan.parts += [MailPart(i, (), tuple(bucket)) for i, bucket in enumerate(follow_ups, start=1)]
    return plan
