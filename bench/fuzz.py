"""Long fuzz run: schemathesis against every operation of the API's own OpenAPI document, in-process.

    .venv/bin/python bench/fuzz.py --examples 300

The same checks as ``tests/api/test_fuzz.py`` (no 5xx; status code, content type, body schema and headers as
documented; no valid request refused, but for what depends on state), with valid (positive) and invalid
(negative) requests, but many more examples, a fresh random
seed unless ``--seed`` is given, and no stop at the first failure: every distinct failure is collected
(by operation, check and status) with a curl command that reproduces it. The app runs through its real
lifespan against an embedded Valkey in a temporary directory, or the server ``--redis-url`` names (its
data is left alone, but the jobs the fuzzer submits stay in it). No worker runs: the fuzzer submits diag
job types, one of which SIGKILLs its worker, so ``GET /readyz`` answering its documented 503 is expected.

It prints the operations, the requests tried (per operation, with their status codes) and the failures;
``--json PATH`` writes them too. Exit status 0 only when no failure was found.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.config import PositiveDataAcceptanceConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.core.transport import Response
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.api.submissions import STORABLE_INTS
from service.config import Settings
from service.devtools.embedded import EmbeddedRedis

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    positive_data_acceptance,
]
#: answers a documented 503 while no worker is alive; that 503 is not a failure
NOT_READY_503 = {"GET /readyz"}
#: The only refusals of a valid (positive) request that positive_data_acceptance lets through, per operation:
#: those that depend on state the document cannot know. Any other 4xx for a valid request is a failure.
_NO_JOB = {404: "no job has this id"}
_NO_DEAD_LETTER = {404: "no dead letter has this id"}
_OVER_QUOTA = {429: "the tenant's quota is used up"}
STATE_REFUSALS: dict[str, dict[int, str]] = {
    "POST /v1/jobs": {
        409: "the Idempotency-Key was used with another body, or a parent job failed or was cancelled",
        **_OVER_QUOTA,
    },
    "POST /v1/jobs:batch": {409: "a parent job failed or was cancelled", **_OVER_QUOTA},
    "GET /v1/jobs/{job_id}": _NO_JOB,
    "DELETE /v1/jobs/{job_id}": {**_NO_JOB, 409: "the job already finished"},
    "POST /v1/jobs/{job_id}/retry": {
        **_NO_JOB,
        409: "the job has not failed, or already ran again",
        **_OVER_QUOTA,
    },
    "GET /v1/jobs/{job_id}/events": _NO_JOB,
    "GET /v1/dead-letters/{job_id}": _NO_DEAD_LETTER,
    "DELETE /v1/dead-letters/{job_id}": _NO_DEAD_LETTER,
    "POST /v1/dead-letters/{job_id}/replay": {**_NO_DEAD_LETTER, 409: "it already ran again", **_OVER_QUOTA},
    "POST /v1/dead-letters:replay": _OVER_QUOTA,
    "DELETE /v1/admin/keys/{key_id}": {404: "no key has this id"},
}
#: run for ever by design (every event of the tenant until the client leaves): not fuzzed
ENDLESS_STREAMS = {"GET /v1/events"}
#: a generated case, whatever its operation's type
Case = schemathesis.Case[Any]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@dataclass
class FoundFailure:
    operation: str
    mode: str
    check: str
    title: str
    status: int | None
    message: str
    curl: str
    occurrences: int = 1


@dataclass
class Report:
    seed: int
    examples_per_operation: int
    operations: list[str] = field(default_factory=list)
    requests: int = 0
    requests_by_operation: dict[str, int] = field(default_factory=dict)
    statuses_by_operation: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[FoundFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


class Fuzzer:
    def __init__(self, schema: schemathesis.BaseSchema, headers: dict[str, str], report: Report) -> None:
        self.schema = schema
        self.headers = headers
        self.report = report
        self._seen: dict[tuple[str, str, str, int | None], FoundFailure] = {}

    def run(self) -> None:
        for result in self.schema.get_all_operations():
            if isinstance(result, Err):  # an operation schemathesis cannot build inputs for
                self.report.notes.append(f"schema error: {result.err()}")
                continue
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            if label in ENDLESS_STREAMS:
                self.report.notes.append(f"{label}: an endless stream, not fuzzed")
                continue
            self.report.operations.append(label)
            accept_valid_requests(self.schema, label)
            for mode in MODES:
                self._fuzz(operation, label, mode)

    def _fuzz(self, operation: Any, label: str, mode: schemathesis.GenerationMode) -> None:
        report = self.report
        statuses = report.statuses_by_operation.setdefault(label, {})
        checks = [c for c in CHECKS if c is not not_a_server_error or label not in NOT_READY_503]

        @hypothesis.seed(report.seed)
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=report.examples_per_operation,
            deadline=None,
            database=None,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def fuzz(case: Case) -> None:
            if mode is schemathesis.GenerationMode.POSITIVE:
                follow_rules_in_words(case)
            report.requests += 1
            report.requests_by_operation[label] = report.requests_by_operation.get(label, 0) + 1
            try:
                response = case.call(headers=self.headers)
            except (
                Exception
            ) as exc:  # the app raised instead of answering (Starlette re-raises after its 500)
                self._record(label, mode, case, "app raised", f"{type(exc).__name__}", None, _tail(exc))
                return
            key = str(response.status_code)
            statuses[key] = statuses.get(key, 0) + 1
            judged_by = [
                c for c in checks if c is not positive_data_acceptance or not refused_for_state(response)
            ]
            try:
                case.validate_response(response, checks=judged_by, headers=self.headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    self._record_failure(label, mode, case, failure, response.status_code)
            except Failure as failure:
                self._record_failure(label, mode, case, failure, response.status_code)
            not_ready = label in NOT_READY_503 and response.status_code >= 500
            if not_ready and response.json().get("type") != "/problems/not-ready":
                self._record(label, mode, case, "not ready", "undocumented 5xx", response.status_code, "")

        try:
            fuzz()
        except Unsatisfiable:
            report.notes.append(f"{label} {mode.value}: nothing to generate (no parameters or body)")

    def _record_failure(
        self,
        label: str,
        mode: schemathesis.GenerationMode,
        case: Case,
        failure: Failure,
        status: int,
    ) -> None:
        self._record(label, mode, case, failure.code, failure.title, status, failure.message)

    def _record(
        self,
        label: str,
        mode: schemathesis.GenerationMode,
        case: Case,
        check: str,
        title: str,
        status: int | None,
        message: str,
    ) -> None:
        key = (label, check, title, status)
        if key in self._seen:
            self._seen[key].occurrences += 1
            return
        found = FoundFailure(
            operation=label,
            mode=mode.value,
            check=check,
            title=title,
            status=status,
            message=message[:2000],
            curl=case.as_curl_command(headers=self.headers),
        )
        self._seen[key] = found
        self.report.failures.append(found)


def accept_valid_requests(schema: schemathesis.BaseSchema, label: str) -> None:
    """Configure positive_data_acceptance for ``label``: 2xx, and only the refusals that depend on state."""
    expected = ["2xx", *(str(status) for status in STATE_REFUSALS.get(label, {}))]
    if label in NOT_READY_503:
        expected.append("503")
    schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(expected_statuses=expected)


def follow_rules_in_words(case: Case) -> None:
    """Make a valid submission also follow the rules its schema states only in words (no JSON Schema can
    compare a field with the clock or with another field, and none bounds every integer of free-form JSON):
    ``run_at`` within its window around now (two days ahead, whatever its time and offset), a ``backoff``
    whose ``cap_s`` is not below its ``base_s``, and integers in params that the job store can hold.
    tests/api/test_openapi.py pins the service's answers to breaking them."""
    body: Any = case.body  # valid, so a submission (or a batch of them) in JSON
    if case.method.upper() != "POST":
        return
    if case.path == "/v1/jobs":
        submissions = [body]
    elif case.path == "/v1/jobs:batch":
        submissions = body["jobs"]
    else:
        return
    for submission in submissions:
        if "params" in submission:
            submission["params"] = _storable(submission["params"])
        run_at = submission.get("run_at")
        if run_at is not None:  # "YYYY-MM-DDT…": keep the time, its fraction and its offset, move the day
            submission["run_at"] = (datetime.now(UTC).date() + timedelta(days=2)).isoformat() + run_at[10:]
        backoff = submission.get("backoff")
        if backoff is not None and backoff["cap_s"] < backoff["base_s"]:
            backoff["base_s"], backoff["cap_s"] = backoff["cap_s"], backoff["base_s"]


def _storable(value: Any) -> Any:
    """``value`` (JSON data) with every integer brought within what the job store holds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, STORABLE_INTS.start), STORABLE_INTS.stop - 1)
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def refused_for_state(response: Response) -> bool:
    """A 422 for a valid submission whose every error is a ``depends_on`` id that names no job: the parent
    does not exist, which is state, not shape (no generated id names a job)."""
    if response.status_code != 422:
        return False
    errors = response.json().get("errors") or []
    return bool(errors) and all(error.get("code") == "unknown_job" for error in errors)


def _tail(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)[-3:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=300, help="examples per operation and mode")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
    parser.add_argument("--redis-url", default=None, help="use this server instead of an embedded one")
    parser.add_argument(
        "--api-key",
        default=None,
        help="the admin key the app bootstraps and every request sends (default: random)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    seed = args.seed if args.seed is not None else random.randrange(2**32)
    report = Report(seed=seed, examples_per_operation=args.examples)
    api_key = args.api_key or secrets.token_urlsafe(32)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jobsvc-fuzz-") as tmp:
        data_dir = Path(tmp)
        if args.redis_url:
            _fuzz(args.redis_url, data_dir, api_key, report)
        else:
            with EmbeddedRedis(data_dir) as server:
                _fuzz(server.url, data_dir, api_key, report)
    report.elapsed_s = round(time.monotonic() - started, 1)
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 1 if report.failures else 0


def _fuzz(redis_url: str, data_dir: Path, api_key: str, report: Report) -> None:
    settings = Settings(
        redis_url=redis_url,
        admin_api_key=SecretStr(api_key),
        diagnostics=True,
        data_dir=data_dir,
        storage_dir=data_dir / "storage",
    )
    headers = {"Authorization": f"Bearer {api_key}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    try:
        Fuzzer(schema, headers, report).run()
    finally:
        try:
            shutdown_lifespans()
        except Exception as exc:  # the app's own shutdown failed: a finding too, and the report stands
            report.notes.append(f"lifespan shutdown raised {type(exc).__name__}: {exc}")


def _print(report: Report) -> None:
    print(f"seed {report.seed}, {report.examples_per_operation} examples per operation and mode")
    print(f"{len(report.operations)} operations, {report.requests} requests in {report.elapsed_s:g}s")
    for label in report.operations:
        statuses = Counter(report.statuses_by_operation.get(label, {}))
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        print(f"  {label:<45} {report.requests_by_operation.get(label, 0):>6}  ({shown})")
    for note in report.notes:
        print(f"note: {note}")
    print(f"{len(report.failures)} distinct failures")
    for failure in report.failures:
        where = f"{failure.operation} ({failure.mode}), status {failure.status}"
        print(f"\n[{failure.check}] {failure.title}: {where}")
        print(f"  seen {failure.occurrences} time(s); reproduce with:\n  {failure.curl}")
        if failure.message:
            print("  " + failure.message.replace("\n", "\n  "))


if __name__ == "__main__":
    sys.exit(main())
