"""``email.send``: one message over SMTP to up to 50 recipients.

The Message-ID comes from the job id, so every attempt of one job sends the same Message-ID and a
mail system (or a person) can recognise a retry as a duplicate.
"""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from email.utils import formatdate
from typing import Annotated

import aiosmtplib
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from jobs.catalogue.patterns import MAIL_DOMAIN
from jobs.catalogue.spans import client_span
from jobs.context import Ctx, SmtpConfig
from jobs.definition import RetryPolicy, job_type
from jobs.errors import JobError, PermanentJobError, RetryableJobError

MAX_TEXT_BYTES = 1_048_576
EMAIL_JOB_TIMEOUT_S = 120.0
#: what a dot-atom (RFC 5322) is made of, between its dots
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
#: characters a Message-ID's left part may not hold
_NOT_ATEXT = re.compile(f"[^{_ATEXT}]")


def _at_most_1_mb(text: str) -> str:
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ValueError(f"must be at most {MAX_TEXT_BYTES} bytes in UTF-8")
    return text


def _single_line(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError("must not contain CR or LF")
    return text


Text = Annotated[str, AfterValidator(_at_most_1_mb)]
#: EmailStr, and in the schema the addresses it accepts in plain ASCII: a dot-atom at a host name
Address = Annotated[
    EmailStr,
    Field(json_schema_extra={"pattern": f"^[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*@{MAIL_DOMAIN}$", "maxLength": 254}),
]


class EmailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[Address] = Field(min_length=1, max_length=50, description="Recipient addresses.")
    subject: Annotated[str, AfterValidator(_single_line)] = Field(
        min_length=1,
        max_length=998,
        description="One line, no CR or LF.",
        json_schema_extra={"pattern": "^[^\\r\\n]*$"},
    )
    body: Text = Field(description="The plain-text body, at most 1 MB.")
    html: Text | None = Field(None, description="An HTML alternative to the body, at most 1 MB.")


class EmailResult(BaseModel):
    message_id: str = Field(description="The Message-ID header sent; the same on every attempt of a job.")
    accepted: list[str] = Field(description="Recipients the SMTP server accepted.")
    rejected: dict[str, str] = Field(description="Recipients it refused, with its reply (code and text).")


def message_id(job_id: str) -> str:
    """The Message-ID of a job's email: stable across attempts."""
    return f"<{_NOT_ATEXT.sub('-', job_id)}@jobsvc>"


def build_message(params: EmailParams, *, sender: str, msg_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(params.to)
    message["Subject"] = params.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(params.body)
    if params.html is not None:
        message.add_alternative(params.html, subtype="html")
    return message


#: what a job's error calls the SMTP server: its name and port are the operator's, not the tenant's
SERVER = "the mail server"


def _scrub(text: str, smtp: SmtpConfig) -> str:
    """``text`` for the job's record, which its tenant reads: without the password, and without the
    server's name and port (its trace span keeps them for the operator)."""
    if smtp.password:
        text = text.replace(smtp.password, "***")
    # as the socket and aiosmtplib word them: "host:port", "host on port N", "('host', N)"
    for named in (
        f"{smtp.host}:{smtp.port}",
        f"{smtp.host} on port {smtp.port}",
        f"({smtp.host!r}, {smtp.port})",
    ):
        text = text.replace(named, SERVER)
    return text.replace(smtp.host, SERVER)


def _is_5xx(code: int) -> bool:
    return 500 <= code < 600


def _refusal(permanent: bool, text: str, smtp: SmtpConfig) -> JobError:
    """A server's refusal as a job error: a 5xx reply is final, anything else may pass next time."""
    message = _scrub(f"{SERVER} {text}", smtp)
    return PermanentJobError(message) if permanent else RetryableJobError(message)


@job_type(
    "email.send",
    description="Sends an email over SMTP; its Message-ID derives from the job id.",
    timeout_s=EMAIL_JOB_TIMEOUT_S,
    max_attempts=6,
    retry=RetryPolicy(base_s=5.0, cap_s=900.0),
)
async def send_email(ctx: Ctx, params: EmailParams) -> EmailResult:
    smtp = ctx["config"].smtp
    msg_id = message_id(ctx["job_id"])
    message = build_message(params, sender=smtp.sender, msg_id=msg_id)
    # exceptions are re-raised `from None`: a library's message must not carry the credentials into the record
    try:
        async with asyncio.timeout(min(smtp.timeout_s, EMAIL_JOB_TIMEOUT_S - 5)):
            attributes: dict[str, str | int] = {
                "server.address": smtp.host,
                "server.port": smtp.port,
                "jobsvc.email.recipients": len(params.to),
            }
            with client_span("smtp send", attributes) as span:
                refused, _ = await aiosmtplib.send(
                    message,
                    sender=smtp.sender,
                    recipients=list(params.to),
                    hostname=smtp.host,
                    port=smtp.port,
                    username=smtp.user,
                    password=smtp.password if smtp.user else None,
                    use_tls=smtp.tls == "tls",
                    start_tls=smtp.tls == "starttls",
                    timeout=smtp.timeout_s,
                )
                span.set("jobsvc.email.rejected", len(refused))
    except aiosmtplib.SMTPRecipientsRefused as exc:
        replies = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        permanent = all(_is_5xx(r.code) for r in exc.recipients)
        raise _refusal(permanent, f"refused every recipient: {replies}", smtp) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _refusal(_is_5xx(exc.code), f"replied {exc.code} {exc.message}", smtp) from None
    except OSError as exc:  # refused, lost or timed out; aiosmtplib's connection errors are OSErrors too
        raise _refusal(False, f"connection failed: {type(exc).__name__}: {exc}", smtp) from None
    except (aiosmtplib.SMTPException, ValueError) as exc:
        raise PermanentJobError(_scrub(f"cannot send: {type(exc).__name__}: {exc}", smtp)) from None
    rejected = {address: f"{reply.code} {reply.message}" for address, reply in refused.items()}
    return EmailResult(
        message_id=msg_id,
        accepted=[address for address in params.to if address not in rejected],
        rejected=rejected,
    )
