"""How the posting workflows show what they found and did: plain-text log tables, the Markdown of
approval requests, and the per-account outcome rows of a broadcast.

Everything a person typed is untrusted here. Log tables are plain text (the task log renders no
HTML); approval requests are Markdown, so typed text only ever appears inside code blocks, whose
content Markdown shows literally; mails go through autoescaping templates.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from koho.errors import Problem


def _width(text: str) -> int:
    """Columns a string takes in a terminal (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _one_line(value: Any, limit: int = 200) -> str:
    text = "" if value is None else str(value)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (no cell spans lines)."""
    cells = [[_one_line(c) for c in row] for row in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True)), line]
    out += [" | ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def problems_table(problems: Iterable[Problem | Mapping[str, Any]]) -> str:
    rows = []
    for p in problems:
        if isinstance(p, Problem):
            rows.append((p.severity, p.where.field or "", p.where.account or "", p.message))
        else:
            rows.append((p.get("severity", "error"), p.get("field") or "", p.get("account") or "", p["reason"]))
    return table(("severity", "field", "account", "reason"), rows)


def preview_text(check: Mapping[str, Any]) -> str:
    """The dry run's report: per account, exactly the text(s) that would be posted, with their counts."""
    lines = [
        f"Ad-hoc post {check.get('entry_id') or '(invalid)'}: {check.get('title') or ''}",
        f"  when: {'now' if check.get('publish_now') else check.get('publish_at_jst')}    "
        f"approval: {'needed' if check.get('needs_approval') else 'not needed'} ({check.get('approval_reason')})",
        "",
    ]
    previews = check.get("previews") or []
    if previews:
        lines.append(
            table(
                (
                    "account",
                    "platform",
                    "parts",
                    "length / limit",
                    "strategy",
                    "images",
                    "rules it would break",
                    "problems",
                ),
                [
                    (
                        p["account_id"],
                        p["platform"],
                        len(p["parts"]),
                        ", ".join(f"{n}/{p['limit'] if p['limit'] is not None else '∞'}" for n in p["lengths"])
                        + f" {p['unit']}",
                        p["strategy"],
                        len(p["images"]),
                        "; ".join(p["rules"]) or "none",
                        len(p.get("problems") or []) or "none",
                    )
                    for p in previews
                ],
            )
        )
        for p in previews:
            lines += ["", f"== {p['account_id']} ({p['platform']}): {p['strategy']}, {len(p['parts'])} part(s)"]
            if p.get("preview_url"):
                lines.append(f"  preview: {p['preview_url']}")
            for n, (part, length) in enumerate(zip(p["parts"], p["lengths"], strict=True), 1):
                limit = p["limit"] if p["limit"] is not None else "no limit"
                lines.append(f"  [{n}/{len(p['parts'])}] {length}/{limit} {p['unit']}")
                lines += [f"  | {line}" for line in part.splitlines() or [""]]
            if not p["parts"]:
                lines.append("  (no text: see the problems)")
            lines += [f"  ! {_one_line(problem, 400)}" for problem in p.get("problems") or []]
    problems = [*(check.get("errors") or []), *(check.get("warnings") or [])]
    if problems:
        lines += ["", "Problems:", problems_table(problems)]
    return "\n".join(lines)


def link_previews(
    check: dict[str, Any], accounts: Mapping[str, Mapping[str, str]], timelines: Mapping[str, str]
) -> None:
    """Give each fitted preview of an account on a stand-in platform its ``preview_url``.

    ``accounts``: account id -> {connection_id, handle, name}; ``timelines``: connection id ->
    the stand-in's timeline (``koho.timeline_links.timelines``).
    """
    from koho.timeline_links import preview_link

    for p in check.get("previews") or []:
        account = accounts.get(p["account_id"]) or {}
        timeline = timelines.get(account.get("connection_id") or "")
        if timeline and p["parts"]:
            p["preview_url"] = preview_link(
                timeline,
                platform=p["platform"],
                parts=p["parts"],
                handle=account.get("handle") or "",
                name=p.get("name") or account.get("name") or "",
                images=p["images"],
                link=p.get("link"),
                account=p["account_id"],
            )


def md_code(text: str) -> str:
    """``text`` as a fenced Markdown code block: shown literally, whatever it contains."""
    longest = max((len(m) for m in re.findall(r"`+|~+", text or "")), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text or ''}\n{fence}"


def approval_body(check: Mapping[str, Any], text: str) -> str:
    """The approval request's Markdown: who asks, when, where, and the text exactly as posted."""
    rows = "\n".join(
        f"| {p['account_id']} | {p['platform']} | {len(p['parts'])} | "
        f"{', '.join(str(n) for n in p['lengths'])} / {p['limit'] if p['limit'] is not None else '∞'} |"
        for p in check.get("previews") or []
    )
    when = "now (as soon as it is approved)" if check.get("publish_now") else check.get("publish_at_jst")
    return "\n\n".join(
        [
            "**An ad-hoc post is waiting for a PR approver.** Approve to publish it, Reject to drop it.",
            f"Triggered by:\n\n{md_code(str(check.get('triggered_by') or 'unknown'))}",
            f"Requested by (as typed in the form):\n\n{md_code(str(check.get('requested_by') or ''))}",
            f"Title:\n\n{md_code(str(check.get('title') or ''))}",
            f"Publish: **{when}**",
            "| account | platform | parts | length / limit |\n|---|---|---|---|\n" + rows,
            "Text:\n\n" + md_code(text),
        ]
    )


def outcome_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """Per-account outcome table of a broadcast or a send."""
    return table(
        ("account", "platform", "status", "parts", "link or reason"),
        [(r["account_id"], r["platform"], r["status"], r.get("parts", ""), link_or_reason(r)) for r in rows],
    )


def link_or_reason(row: Mapping[str, Any]) -> str:
    """The post's link; a platform without public links (LINE broadcasts) gets its id; else the reason."""
    if row.get("url"):
        return str(row["url"])
    if row.get("status") == "published":
        return f"(no public link; id {row.get('remote_id')})"
    return str(row.get("error") or "")
