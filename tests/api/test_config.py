"""Settings: nothing required in development; unsafe values refused at start in production."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop
from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from jobs.engine.connection import redis_settings_for
from service.config import DEV_WEBHOOK_SECRET, Settings
from worker_settings import use_uvloop_under_arq_cli

SECRET = "s" * 40


def test_development_needs_no_setting() -> None:
    settings = Settings()
    assert settings.is_development
    assert settings.outbound_private_allowed
    assert settings.webhook_secrets_key == DEV_WEBHOOK_SECRET.encode()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSVC_ENVIRONMENT", "development")
    monkeypatch.setenv("JOBSVC_REDIS_URL", "redis://cache:6380/2")
    monkeypatch.setenv("JOBSVC_SMTP_TLS", "starttls")
    monkeypatch.setenv("JOBSVC_DIAGNOSTICS", "true")
    settings = Settings()
    assert settings.effective_redis_url == "redis://cache:6380/2"
    assert settings.smtp_tls == "starttls"
    assert settings.diagnostics


def test_a_safe_production_configuration_starts() -> None:
    settings = Settings(environment="production", redis_url="rediss://redis:6379/0", webhook_secret=SECRET)
    assert not settings.outbound_private_allowed
    long_enough = "k" * 32
    Settings(
        environment="production",
        redis_url="rediss://redis:6379/0",
        webhook_secret=SECRET,
        admin_api_key=long_enough,
        metrics_token=long_enough,
    )


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"redis_url": None}, "JOBSVC_REDIS_URL"),
        ({"webhook_secret": None}, "JOBSVC_WEBHOOK_SECRET"),
        ({"webhook_secret": "short"}, "JOBSVC_WEBHOOK_SECRET"),
        ({"webhook_secret": DEV_WEBHOOK_SECRET}, "JOBSVC_WEBHOOK_SECRET"),
        ({"smtp_password": "hunter2", "smtp_tls": "none"}, "JOBSVC_SMTP_TLS"),
        ({"admin_api_key": "x"}, "JOBSVC_ADMIN_API_KEY"),
        ({"admin_api_key": "k" * 31}, "JOBSVC_ADMIN_API_KEY"),
        ({"metrics_token": "scrape-me"}, "JOBSVC_METRICS_TOKEN"),
    ],
)
def test_unsafe_production_values_are_refused_at_start(overrides: dict[str, object], complaint: str) -> None:
    values: dict[str, object] = {
        "environment": "production",
        "redis_url": "redis://redis:6379/0",
        "webhook_secret": SECRET,
        **overrides,
    }
    with pytest.raises(ValidationError, match=complaint):
        Settings(**values)  # type: ignore[arg-type]


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = Settings(smtp_password="hunter2", webhook_secret=SECRET)
    assert "hunter2" not in repr(settings)
    assert SECRET not in repr(settings)


def test_served_queues_and_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSVC_QUEUES", "critical:10, default")
    monkeypatch.setenv("JOBSVC_JOB_LIMITS", '{"webhook.deliver": {"rate": 50, "per_s": 2}}')
    settings = Settings()
    assert settings.served_queues == (("critical", 10), ("default", 3))
    assert settings.limit_overrides == {"webhook.deliver": {"rate": 50, "per_s": 2.0}}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOBSVC_QUEUES", "nope"),
        ("JOBSVC_QUEUES", "default,default"),
        ("JOBSVC_QUEUES", "default:0"),
        ("JOBSVC_QUEUES", ""),
        ("JOBSVC_JOB_LIMITS", '{"webhook.deliver": {"rate": 0}}'),
        ("JOBSVC_JOB_LIMITS", '{"webhook.deliver": {"burst": 3}}'),
        ("JOBSVC_JOB_LIMITS", "not json"),
    ],
)
def test_nonsense_queues_or_limits_stop_the_process_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises((ValidationError, SettingsError)):
        Settings()


def test_sentinels_come_from_the_environment_with_the_url_giving_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBSVC_ENVIRONMENT", "development")
    monkeypatch.setenv("JOBSVC_REDIS_SENTINELS", "sentinel-0:26379, sentinel-1, [::1]:26380")
    monkeypatch.setenv("JOBSVC_REDIS_SENTINEL_MASTER", "jobs")
    monkeypatch.setenv("JOBSVC_REDIS_URL", "redis://:pw@ignored/3")
    target = Settings().redis_target
    assert target.sentinels == (("sentinel-0", 26379), ("sentinel-1", 26379), ("::1", 26380))
    assert (target.sentinel_master, target.url) == ("jobs", "redis://:pw@ignored/3")
    settings = redis_settings_for(target)
    assert (settings.sentinel, settings.host, settings.password, settings.database) == (
        True,
        list(target.sentinels),
        "pw",
        3,
    )


def test_production_may_name_sentinels_instead_of_a_url() -> None:
    Settings(environment="production", redis_sentinels="sentinel-0:26379", webhook_secret=SECRET)


@pytest.mark.parametrize("value", ["sentinel-0:port", "sentinel-0:26379,:26379", "sentinel-0:99999"])
def test_unreadable_sentinels_stop_the_process_at_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("JOBSVC_REDIS_SENTINELS", value)
    with pytest.raises(ValidationError, match="JOBSVC_REDIS_SENTINELS"):
        Settings()


@pytest.mark.parametrize(
    ("program", "enabled", "uses_uvloop"),
    [("/venv/bin/arq", True, True), ("/venv/bin/arq", False, False), ("/venv/bin/pytest", True, False)],
)
def test_workers_started_by_arqs_cli_run_on_uvloop_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, program: str, enabled: bool, uses_uvloop: bool
) -> None:
    monkeypatch.setattr(sys, "argv", [program, "worker_settings.WorkerSettings"])
    before = asyncio.get_event_loop_policy()
    try:
        use_uvloop_under_arq_cli(Settings(worker_uvloop=enabled))
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy) is uses_uvloop
    finally:
        asyncio.set_event_loop_policy(before)


# -- an unset environment fails closed ------------------------------------------------------------------


@pytest.mark.parametrize(
    "loopback",
    [
        {},
        {"redis_url": "redis://127.0.0.1:6379/0"},
        {"redis_url": "redis://localhost:6379/0", "host": "::1"},
        {"redis_url": "unix:///run/redis.sock"},
        {"redis_sentinels": "127.0.0.1:26379,[::1]:26380"},
    ],
)
def test_an_unset_environment_is_development_on_loopback_only(loopback: dict[str, str]) -> None:
    settings = Settings(**loopback)
    assert settings.effective_environment == "development"
    assert settings.outbound_private_allowed


@pytest.mark.parametrize(
    "exposed",
    [
        {"host": "0.0.0.0"},
        {"host": "::"},
        {"host": "api.internal"},
        {"redis_url": "redis://redis:6379/0"},
        {"redis_url": "redis://10.0.0.5:6379/0"},
        {"redis_sentinels": "127.0.0.1:26379,sentinel-1:26379"},
    ],
)
def test_an_unset_environment_anywhere_else_is_production(exposed: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="JOBSVC_ENVIRONMENT is unset"):
        Settings(**exposed)
    settings = Settings(**{"redis_url": "redis://redis:6379/0", **exposed}, webhook_secret=SECRET)
    assert settings.effective_environment == "production"
    assert not settings.outbound_private_allowed


def test_a_set_environment_is_kept_wherever_the_process_runs() -> None:
    settings = Settings(environment="development", host="0.0.0.0", redis_url="redis://redis:6379/0")
    assert settings.is_development
