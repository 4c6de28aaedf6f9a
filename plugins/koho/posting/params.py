"""The trigger forms of **adhoc_post** and **emergency_broadcast** (Airflow ``Param`` objects).

Built when the DAG file is parsed, from the account registry (``include/config/accounts.yaml``,
read with the config loader: the only I/O) and the file names in ``include/media``.

The account field is a multi-select of the registry's active accounts and groups, but a
*proposal list* (JSON schema ``examples``), not an ``enum``: the form offers exactly the
registry's choices, yet the value is judged when the run starts, against the registry as it is
then. An ``enum`` would be judged by the API against the list of the last parse, and a refused
trigger never becomes a run that shows *which* field is wrong and why; a retired account or a
typo in a REST call must show up in the run as ``accounts[1]: account is retired`` like every
other error. The same holds for the other fields: their types are loose on purpose and all
checking happens in the run (``koho.posting.form``).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Param

from koho.channels.registry import CHANNELS
from koho.posting.vocabulary import DEFAULT_TARGETS, KIND_LABELS, SEVERITIES

log = logging.getLogger(__name__)

_GROUP_LABELS = {
    "all": "すべての公式アカウント (all)",
    "general": "総合アカウント (general)",
    "special": "分野別アカウント (special)",
}


def account_choices() -> tuple[list[str], dict[str, str]]:
    """(values, labels): groups first, then every active account; never raises (a broken registry
    must not break the DAG file: the run reports it)."""
    values = ["all", "general", "special"]
    labels = {k: v for k, v in _GROUP_LABELS.items() if k in values}
    try:
        from koho.calendar.targets import publishable
        from koho.config import load_config

        config = load_config()
        active = [a for a in config.accounts if publishable(a)]
    except Exception:  # the registry cannot be read now: the form still works with the groups
        log.exception("account registry unreadable; the form offers the groups only")
        return values, labels
    for topic in sorted({a.topic for a in active if a.topic}):
        values.append(f"topic:{topic}")
        labels[f"topic:{topic}"] = f"分野 {topic} のアカウント (topic:{topic})"
    for platform in sorted({a.platform for a in active}):
        values.append(f"platform:{platform}")
        labels[f"platform:{platform}"] = f"{platform} のアカウントすべて (platform:{platform})"
    for account in active:
        values.append(account.id)
        labels[account.id] = f"{account.name} ({account.id})"
    return values, labels


def media_choices() -> list[str]:
    try:
        from koho.config.loader import media_dir

        return sorted(p.name for p in media_dir().iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return []


def adhoc_params() -> dict[str, Param]:
    values, labels = account_choices()
    section = "投稿内容 / The post"
    timing = "いつ・だれが / When and who"
    return {
        "accounts": Param(
            [],
            type="array",
            title="投稿先アカウント / Accounts",
            examples=values,
            values_display=labels,
            description="アカウントまたはグループを選んでください。Accounts or groups (all, general, special, "
            "topic:…, platform:…). Checked when the run starts.",
            section=section,
        ),
        "text": Param(
            "",
            type="string",
            format="multiline",
            title="本文 / Text",
            description="投稿する本文（プレーンテキスト）。各プラットフォームの文字数に合わせて自動で調整されます。"
            "Plain text; fitted to each platform (a thread where replies exist).",
            section=section,
        ),
        "title": Param(
            None,
            type=["null", "string"],
            title="件名 / Title",
            description="カレンダー表示用。空なら本文の1行目。Shown in the calendar; default: the first line.",
            section=section,
        ),
        "link": Param(
            None, type=["null", "string"], title="リンク / Link", description="https:// のURL（任意）", section=section
        ),
        "images": Param(
            [],
            type="array",
            title="画像 / Images",
            examples=media_choices(),
            description="include/media のファイル名または https:// のURL（最大4枚）。Instagram には必須。",
            section=section,
        ),
        "hashtags": Param(
            [], type="array", title="ハッシュタグ / Hashtags", description="# なしで入力", section=section
        ),
        "when": Param(
            "now",
            type="string",
            title="投稿時刻 / When",
            enum=["now", "at"],
            values_display={"now": "今すぐ / now", "at": "日時を指定 / at the time below"},
            section=timing,
        ),
        "publish_at": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="投稿日時（日本時間）/ Publish at (JST)",
            description="「日時を指定」のときだけ使います。Used with 'at' only.",
            section=timing,
        ),
        "allow_quiet_hours": Param(
            False,
            type="boolean",
            title="静穏時間帯でも投稿 / Allow quiet hours",
            description="夜間などの静穏時間帯でも投稿します（上限・間隔の規則は変わりません）。",
            section=timing,
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="試行のみ（投稿しない）/ Dry run",
            description="各プラットフォームで実際に投稿される本文と、守れない規則を表示するだけで、何も投稿しません。",
            section=timing,
        ),
        "requested_by": Param(
            "",
            type="string",
            title="依頼者（氏名・所属）/ Requested by",
            description="記録用。承認の要否はログインしているユーザーで決まります。For the record; whether a PR "
            "approver must approve depends on the logged-in user.",
            section=timing,
        ),
    }


def emergency_params(confirmation: str) -> dict[str, Param]:
    values, labels = account_choices()
    values = [*CHANNELS, *values]
    labels = {**{name: info.form_label for name, info in CHANNELS.items()}, **labels}
    return {
        "message": Param(
            "",
            type="string",
            format="multiline",
            title="緊急メッセージ / Message",
            description="すべてのアカウントに同じ文面で投稿されます（言い換えなし）。The same text everywhere, never "
            "reworded; split into a thread only where a platform's limit forces it.",
        ),
        "link": Param(None, type=["null", "string"], title="リンク / Link", description="https:// のURL（任意）"),
        "severity": Param(
            "critical",
            type="string",
            title="重要度 / Severity",
            enum=list(SEVERITIES),
            values_display={"critical": "緊急 / critical", "high": "重要 / high", "advisory": "注意 / advisory"},
        ),
        "targets": Param(
            list(DEFAULT_TARGETS),
            type="array",
            title="配信先 / Targets",
            examples=values,
            values_display=labels,
            description="既定: すべての公式アカウントと市ホームページ。Default: every active account and the website.",
        ),
        "kind": Param(
            "alert",
            type="string",
            title="種別 / Kind",
            enum=list(KIND_LABELS),
            values_display={k: f"{v} ({k})" for k, v in KIND_LABELS.items()},
        ),
        "follow_up_of": Param(
            None,
            type=["null", "string"],
            title="続報・解除の元の配信 / Follow-up of",
            description="続報・解除のとき、元の緊急配信のエントリID（結果メールに記載）。返信できるプラットフォームでは"
            "元の投稿への返信になります。",
        ),
        "confirmation": Param(
            "",
            type="string",
            title=f"確認: 「{confirmation}」と入力 / Type '{confirmation}'",
            description="誤配信防止のため、正確に入力してください。Must match exactly.",
        ),
        "requested_by": Param("", type="string", title="依頼者 / Requested by", description="記録用 / for the record"),
        "draft_of": Param(
            None,
            type=["null", "string"],
            title="元の下書き / Draft",
            description="disaster_watch の下書きから配信するときに自動で入ります。Set by the watcher.",
            section="自動入力 / Filled in by Koho",
        ),
    }


def param_values(params: Any) -> dict[str, Any]:
    """The run's params as plain values (``context['params']`` may be a ParamsDict)."""
    return {key: params[key] for key in params}
