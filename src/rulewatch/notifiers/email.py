"""Email over SMTP: a row is one message to its recipients; a tick's alerts to one recipient
are grouped into one message listing them.

SMTP is at least once: a message resent after a crash keeps its Message-ID, fixed by the
rows' ids, so mail clients can drop the rare duplicate.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from rulewatch.config import SmtpSettings
from rulewatch.models import Notification
from rulewatch.notifiers.transport import (
    NotConfigured,
    PermanentSendError,
    TransientSendError,
    TransportConfig,
)
from rulewatch.services.reports import report_environment


class Email:
    """The email transport: SMTP settings come from RULEWATCH_SMTP_*."""

    def group_key(self, event: str, tick: str | None, recipient: str) -> str | None:
        """A tick's alerts of one kind to one recipient share a message."""
        return None if tick is None else f"{event}:{tick}:{recipient}"

    def lease_s(self, config: TransportConfig) -> float:
        """RULEWATCH_SMTP_LEASE_S, checked at start to be more than twice the SMTP timeout."""
        return smtp_settings(config).lease_s

    def send(self, rows: Sequence[Notification], config: TransportConfig) -> None:
        """Send the rows as one email; SMTP 4xx and unreachable servers are transient."""
        smtp = smtp_settings(config)
        message = build_message(rows, smtp.sender)
        if not smtp.host:
            raise NotConfigured("not sent: no SMTP server configured (set RULEWATCH_SMTP_HOST)")
        try:
            deliver(message, smtp)
        except (smtplib.SMTPException, ValueError) as exc:
            raise PermanentSendError(f"SMTP refused it: {exc}") from exc


def smtp_settings(config: TransportConfig) -> SmtpSettings:
    """The SMTP part of the settings."""
    return config if isinstance(config, SmtpSettings) else config.smtp


def build_message(rows: Sequence[Notification], sender: str) -> EmailMessage:
    """A multipart (text and HTML) message for one row, or one listing a group's rows.

    The Message-ID is fixed by the rows' ids, so a resend after a crash can be
    recognised as the same message by mail clients.
    """
    first = rows[0]
    if len(rows) == 1 or any(r.details is None for r in rows):
        subject, text, html = first.subject, first.body_text, first.body_html
    else:
        subject, text, html = render_group(rows)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(first.recipients)
    message["Subject"] = subject
    address = parseaddr(sender)[1]  # "rulewatch <rw@example.com>" -> rw@example.com
    domain = address.rsplit("@", 1)[-1] if "@" in address else "rulewatch.invalid"
    # the same rows give the same id (a resend after a crash); other rows, another id
    ids = "-".join(str(r.id) for r in sorted(rows, key=lambda r: r.id))
    idstring = f"rulewatch-notification-{ids if len(ids) <= 40 else _digest(ids)}"
    message["Message-ID"] = f"<{idstring}@{domain}>"  # not make_msgid: it adds time and chance
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def render_group(rows: Sequence[Notification]) -> tuple[str, str, str]:
    """Subject, text and HTML of one email that lists the alerts of several rules."""
    # listed by rule name: rows of one tick are written by several batches in any order
    alerts = sorted((row.details or {} for row in rows), key=lambda a: str(a.get("rule_name")))
    headline = alerts[0].get("headline", rows[0].kind.upper())
    names = [str(a.get("rule_name")) for a in alerts]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    subject = f"[{headline}] {len(rows)} rules: {shown}"
    context = {"headline": headline, "kind": rows[0].kind, "alerts": alerts, "count": len(rows)}
    env = report_environment()
    return (
        subject,
        env.get_template("email/group.txt").render(context),
        env.get_template("email/group.html").render(context),
    )


def deliver(message: EmailMessage, smtp: SmtpSettings) -> None:
    """Hand the message to the SMTP server; transient trouble raises TransientSendError."""
    try:
        with _connect(smtp) as client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise TransientSendError(f"recipients deferred: {exc.recipients!r}") from exc
        raise
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TransientSendError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        raise
    except smtplib.SMTPServerDisconnected as exc:
        raise TransientSendError(f"SMTP server {smtp.host}:{smtp.port} hung up: {exc}") from exc
    except smtplib.SMTPException:
        raise  # permanent: the server said no (smtplib's errors are OSErrors too)
    except OSError as exc:
        where = f"{smtp.host}:{smtp.port}"
        raise TransientSendError(f"SMTP server {where} unreachable: {exc}") from exc


def _connect(smtp: SmtpSettings) -> Any:
    if smtp.ssl:
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
    return smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
