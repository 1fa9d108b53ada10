"""The dashboard's tenant matrix: every page, the live stream and an action, for a caller with no key, a
bad key, a key without the `read` scope, another tenant's key, the tenant's own key and an operator's
key (of another tenant), each answered as documented (README, "Dashboard"; docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.api.test_auth import create_key, matrix_ids
from tests.conftest import auth
from tests.dashboard.test_dashboard_http import SIGN_IN, form_token, sign_in

TENANT = "matrix"  # tests.api.test_auth's matrix tenant
STREAM = "/dashboard/events"


@asynccontextmanager
async def visitor(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: no API key, keeps its cookies."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobsvc.test"
    ) as client:
        yield client


async def stream_status(client: httpx.AsyncClient) -> int:
    """The live stream's status: refusals answer at once; a stream still open after a moment got through."""
    try:
        async with asyncio.timeout(1.0):
            return (await client.get(STREAM)).status_code
    except TimeoutError:
        return 200


def pages(job_id: str, dead_id: str) -> dict[str, str]:
    """Every page a signed-in tenant may ask for, by what it shows."""
    return {
        "overview": "/dashboard",
        "jobs": "/dashboard/jobs",
        "job": f"/dashboard/jobs/{job_id}",
        "job row": f"/dashboard/jobs/{job_id}/row",
        "job outcome": f"/dashboard/jobs/{job_id}/outcome",
        "dead letters": "/dashboard/dead-letters",
        "dead letter": f"/dashboard/jobs/{dead_id}",
        "schedules": "/dashboard/schedules",
        "workers": "/dashboard/workers",
    }


async def test_callers_without_a_usable_key_get_the_sign_in_page_and_nothing_else(
    app: Any, http: httpx.AsyncClient, run_jobs: Any
) -> None:
    ids = await matrix_ids(http, run_jobs)
    submit_only = (await create_key(http, TENANT, ["submit"]))["key"]
    for who, key, refusal in (
        ("no key", None, None),
        ("bad key", "jsk_0123456789abcdef_" + "x" * 43, 401),
        ("key without read", submit_only, 403),
    ):
        async with visitor(app) as browser:
            if key is not None:
                assert (await sign_in(browser, key)).status_code == refusal, who
            for name, path in pages(ids.queued, ids.failed).items():
                response = await browser.get(path)
                if path == "/dashboard":
                    assert response.status_code == 200, (who, name)  # the sign-in form
                    assert 'name="api_key"' in response.text
                else:
                    assert response.status_code == 303, (who, name, response.status_code)
                    assert response.headers["location"].startswith(SIGN_IN), (who, name)
            assert await stream_status(browser) == 401, who
            assert ids.queued not in (await browser.get("/dashboard")).text


async def test_another_tenants_key_sees_its_own_tenant_only_and_an_operators_sees_the_cluster(
    app: Any, http: httpx.AsyncClient, run_jobs: Any
) -> None:
    ids = await matrix_ids(http, run_jobs)
    owners = (await create_key(http, TENANT, ["read", "cancel"]))["key"]
    intruders = (await create_key(http, "intruder", ["submit", "read", "cancel", "admin"]))["key"]
    operators = (await create_key(http, "ops", ["read", "cancel", "admin", "operator"]))["key"]
    expected = {
        # page: (the owner, another tenant (admin included), an operator of another tenant)
        "overview": (200, 200, 200),
        "jobs": (200, 200, 200),
        "job": (200, 404, 404),
        "job row": (200, 404, 404),
        "job outcome": (200, 404, 404),
        "dead letters": (200, 200, 200),
        "dead letter": (200, 404, 404),
        "schedules": (403, 403, 200),
        "workers": (403, 403, 200),
    }
    for column, key in enumerate((owners, intruders, operators)):
        async with visitor(app) as browser:
            assert (await sign_in(browser, key)).status_code == 303
            for name, path in pages(ids.queued, ids.failed).items():
                response = await browser.get(path)
                assert response.status_code == expected[name][column], (column, name, response.status_code)
                if column > 0 and response.status_code == 200:  # another tenant's listings never show them
                    assert ids.queued not in response.text, (column, name)
                    assert ids.failed not in response.text, (column, name)
            assert await stream_status(browser) == 200
            cluster = await browser.get("/dashboard")
            assert ('id="queues-title"' in cluster.text) == (column == 2)
            if column < 2:
                assert "the `operator` scope" in (await browser.get("/dashboard/workers")).text

            # an action on the matrix tenant's job: the owner's cancels it, no one else's touches it
            token = form_token((await browser.get("/dashboard/jobs")).text)
            cancel = await browser.post(f"/dashboard/jobs/{ids.to_cancel}/cancel", data={"csrf_token": token})
            assert cancel.status_code == (303 if column == 0 else 404), (column, cancel.status_code)
    job = await http.get(f"/v1/jobs/{ids.to_cancel}", headers=auth(owners))
    assert job.json()["status"] == "cancelled"
