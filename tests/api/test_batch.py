"""POST /v1/jobs:batch: up to 1,000 jobs, all validated before any is enqueued."""

from __future__ import annotations

from typing import Any

import httpx
from arq import ArqRedis

from jobs.engine import keys
from jobs.engine.queue_ops import SUBMIT_MANY_CHUNK
from tests.helpers import read_job


async def test_a_batch_is_enqueued_and_every_job_runs(http: httpx.AsyncClient, run_jobs: Any) -> None:
    batch = [{"type": "diag.sleep", "params": {"seconds": 0}}, {"type": "diag.noop", "delay_seconds": 0.1}]
    response = await http.post("/v1/jobs:batch", json={"jobs": batch})
    assert response.status_code == 202
    jobs = response.json()["jobs"]
    assert [(j["type"], j["status"]) for j in jobs] == [("diag.sleep", "queued"), ("diag.noop", "deferred")]
    assert len({j["id"] for j in jobs}) == 2

    await run_jobs()
    for job in jobs:
        assert (await read_job(http, job["id"]))["status"] == "succeeded"


async def test_a_batch_of_1000_is_accepted_whole(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    batch = [{"type": "diag.noop", "priority": i % 10} for i in range(1000)]
    response = await http.post("/v1/jobs:batch", json={"jobs": batch})
    assert response.status_code == 202
    assert len(response.json()["jobs"]) == 1000
    assert await redis.zcard(keys.arq_queue("default")) == 1000
    assert await redis.zcard(keys.index_all(keys.DEFAULT_TENANT)) == 1000


async def test_a_batch_is_written_by_a_few_script_calls_not_one_per_job(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    async def script_calls() -> int:
        stats = await redis.info("commandstats")
        return sum(
            int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval", "fcall")
        )

    warm = await http.post("/v1/jobs:batch", json={"jobs": [{"type": "diag.noop"}]})
    assert warm.status_code == 202  # scripts loaded, connections open
    before = await script_calls()
    response = await http.post("/v1/jobs:batch", json={"jobs": [{"type": "diag.noop"}] * 1000})
    assert response.status_code == 202
    assert await redis.zcard(keys.arq_queue("default")) == 1001
    # the quota reservation, then one call per SUBMIT_MANY_CHUNK jobs
    assert await script_calls() - before == 1 + 1000 // SUBMIT_MANY_CHUNK


async def test_bad_items_are_named_by_index_and_nothing_is_enqueued(
    http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    batch = [
        {"type": "diag.noop"},
        {"type": "diag.sleep", "params": {"seconds": -1}},
        {"type": "diag.noop"},
        {"type": "no.such_type"},
        {"type": "diag.noop", "surprise": True},
    ]
    response = await http.post("/v1/jobs:batch", json={"jobs": batch})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert pointers == {"/jobs/1/params/seconds", "/jobs/3/type", "/jobs/4/surprise"}
    assert await redis.dbsize() == 0


async def test_an_empty_or_oversized_batch_is_refused(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    assert (await http.post("/v1/jobs:batch", json={"jobs": []})).status_code == 422
    too_many = [{"type": "diag.noop"}] * 1001
    assert (await http.post("/v1/jobs:batch", json={"jobs": too_many})).status_code == 422
    assert await redis.dbsize() == 0


async def test_openapi_documents_the_batch_with_its_item_schema(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    body = document["paths"]["/v1/jobs:batch"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/JobBatchSubmit"}
    items = document["components"]["schemas"]["JobBatchSubmit"]["properties"]["jobs"]
    variants = items["items"]["discriminator"]["mapping"]
    assert variants["diag.sleep"] == "#/components/schemas/Submit_diag_sleep"
    assert items["maxItems"] == 1000
