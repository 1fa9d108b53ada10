"""email.send against a real SMTP server (aiosmtpd on 127.0.0.1), submitted through the API and run by ARQ."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from arq import ArqRedis
from pydantic import SecretStr

from jobs.engine import keys
from service.config import Settings
from tests.helpers import make_due
from tests.helpers import read_job as read
from tests.helpers import submit as submit_job

USER = "alice"
PASSWORD = "correct-horse-battery-staple"


@dataclass
class SmtpServer:
    """A real SMTP server in a thread that records what it receives and refuses what it is told to."""

    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    #: replies to the first DATA commands, in order; then 250
    data_replies: list[str] = field(default_factory=list)
    received: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    port: int = 0
    controller: Controller | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return self.data_replies.pop(0) if self.data_replies else "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.authenticate,
            auth_require_tls=False,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def message(self, index: int = 0) -> EmailMessage:
        wire = (self.received[index].original_content or b"").replace(b"\r\n", b"\n")
        return email.message_from_bytes(wire, policy=email.policy.default)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings_update() -> dict[str, Any]:
    """Overridden by tests that need other SMTP settings."""
    return {}


@pytest.fixture
def settings(settings: Settings, smtp_server: SmtpServer, settings_update: dict[str, Any]) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
            "smtp_timeout_s": 2,
            **settings_update,
        }
    )


async def submit(http: httpx.AsyncClient, params: dict[str, Any], **extra: Any) -> str:
    return str((await submit_job(http, "email.send", params, **extra))["id"])


async def test_email_is_delivered_with_a_message_id_from_the_job_id(
    http: httpx.AsyncClient, run_jobs: Any, smtp_server: SmtpServer, settings: Settings
) -> None:
    params = {
        "to": ["bob@example.com", "carol@example.org"],
        "subject": "Report ready ✓",
        "body": "Hi Bob,\n",
    }
    job_id = await submit(http, params)

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    assert job["result"] == {
        "message_id": f"<{job_id}@jobsvc>",
        "accepted": ["bob@example.com", "carol@example.org"],
        "rejected": {},
    }
    [envelope] = smtp_server.received
    assert envelope.mail_from == settings.smtp_from
    assert envelope.rcpt_tos == ["bob@example.com", "carol@example.org"]
    message = smtp_server.message()
    assert message["Message-ID"] == f"<{job_id}@jobsvc>"
    assert message["Subject"] == "Report ready ✓"
    assert message["To"] == "bob@example.com, carol@example.org"
    assert message["From"] == settings.smtp_from
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "Hi Bob,\n"
    assert smtp_server.logins == []


async def test_html_is_sent_as_an_alternative_to_the_text(
    http: httpx.AsyncClient, run_jobs: Any, smtp_server: SmtpServer
) -> None:
    params = {"to": ["bob@example.com"], "subject": "Hi", "body": "plain", "html": "<p>rich</p>"}
    job_id = await submit(http, params)

    await run_jobs()

    assert (await read(http, job_id))["status"] == "succeeded"
    message = smtp_server.message()
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content().strip() for part in message.iter_parts())
    assert (text, html) == ("plain", "<p>rich</p>")


@pytest.mark.parametrize(
    "params",
    [
        {"to": ["not-an-address"], "subject": "s", "body": "b"},
        {"to": [], "subject": "s", "body": "b"},
        {"to": ["bob@example.com"], "subject": "s\r\nBcc: eve@example.com", "body": "b"},
        {"to": ["bob@example.com"], "subject": "", "body": "b"},
        {"to": ["bob@example.com"], "subject": "s", "body": "b", "cc": ["eve@example.com"]},
        {"to": [f"u{i}@example.com" for i in range(51)], "subject": "s", "body": "b"},
    ],
    ids=["bad-address", "no-recipient", "crlf-in-subject", "empty-subject", "extra-field", "51-recipients"],
)
async def test_invalid_params_are_refused_and_nothing_is_enqueued(
    http: httpx.AsyncClient, redis: ArqRedis, params: dict[str, Any]
) -> None:
    response = await http.post("/v1/jobs", json={"type": "email.send", "params": params})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"].startswith("/params")
    assert await redis.zcard(keys.arq_queue("default")) == 0


async def test_refused_recipient_fails_the_job_after_one_attempt(
    http: httpx.AsyncClient, run_jobs: Any, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse_rcpt["nobody@example.com"] = "550 5.1.1 No such user"
    job_id = await submit(http, {"to": ["nobody@example.com"], "subject": "s", "body": "b"})

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"]["type"] == "PermanentJobError"
    assert "550 5.1.1 No such user" in job["error"]["message"]
    assert smtp_server.received == []


async def test_partly_refused_recipients_are_reported_in_the_result(
    http: httpx.AsyncClient, run_jobs: Any, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse_rcpt["nobody@example.com"] = "550 5.1.1 No such user"
    params = {"to": ["bob@example.com", "nobody@example.com"], "subject": "s", "body": "b"}
    job_id = await submit(http, params)

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "succeeded"
    assert job["result"]["accepted"] == ["bob@example.com"]
    assert job["result"]["rejected"] == {"nobody@example.com": "550 5.1.1 No such user"}
    assert smtp_server.received[0].rcpt_tos == ["bob@example.com"]


async def test_temporary_refusal_is_retried_with_the_same_message_id(
    http: httpx.AsyncClient,
    run_jobs: Any,
    redis: ArqRedis,
    smtp_server: SmtpServer,
    longest_backoff: None,
) -> None:
    smtp_server.data_replies.append("451 4.3.0 Try again later")
    job_id = await submit(http, {"to": ["bob@example.com"], "subject": "s", "body": "b"})

    await run_jobs(max_burst_jobs=1)
    waiting = await read(http, job_id)
    assert waiting["status"] == "deferred"
    assert waiting["attempts"] == 1
    assert waiting["error"]["type"] == "RetryableJobError"
    assert "451" in waiting["error"]["message"]

    await make_due(redis, job_id)
    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2
    assert len(smtp_server.received) == 2
    assert (
        smtp_server.message(0)["Message-ID"] == smtp_server.message(1)["Message-ID"] == f"<{job_id}@jobsvc>"
    )


async def test_unreachable_server_is_retried_until_attempts_run_out(
    http: httpx.AsyncClient,
    run_jobs: Any,
    redis: ArqRedis,
    smtp_server: SmtpServer,
    longest_backoff: None,
) -> None:
    smtp_server.stop()  # its port is now closed: connections are refused
    job_id = await submit(http, {"to": ["bob@example.com"], "subject": "s", "body": "b"}, max_attempts=2)

    await run_jobs(max_burst_jobs=1)
    assert (await read(http, job_id))["status"] == "deferred"
    await make_due(redis, job_id)
    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 2
    assert job["error"]["type"] == "RetryableJobError"
    assert "the mail server connection failed" in job["error"]["message"]
    assert "127.0.0.1" not in job["error"]["message"]  # the tenant learns nothing of the network
    assert str(smtp_server.port) not in job["error"]["message"]


@pytest.mark.parametrize("settings_update", [{"smtp_user": USER, "smtp_password": SecretStr(PASSWORD)}])
async def test_login_when_a_user_is_configured(
    http: httpx.AsyncClient, run_jobs: Any, smtp_server: SmtpServer
) -> None:
    job_id = await submit(http, {"to": ["bob@example.com"], "subject": "s", "body": "b"})

    await run_jobs()

    assert (await read(http, job_id))["status"] == "succeeded"
    assert len(smtp_server.logins) == 1
    assert len(smtp_server.received) == 1


@pytest.mark.parametrize(
    "settings_update", [{"smtp_user": USER, "smtp_password": SecretStr("wrong-password")}]
)
async def test_refused_login_fails_at_once_and_never_shows_the_password(
    http: httpx.AsyncClient,
    run_jobs: Any,
    redis: ArqRedis,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    job_id = await submit(http, {"to": ["bob@example.com"], "subject": "s", "body": "b"})

    await run_jobs()

    job = await read(http, job_id)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"]["type"] == "PermanentJobError"
    assert "535" in job["error"]["message"]
    assert "wrong-password" not in caplog.text
    record = await redis.get(keys.arq_result(job_id))
    assert record is not None
    assert b"wrong-password" not in record
    assert smtp_server.received == []
