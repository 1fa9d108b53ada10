"""The ``jobsvc`` command: ``jobsvc dev`` runs the stack; the other commands talk to a running API.

    jobsvc dev
    jobsvc submit reports.build --params '{"month": "2025-01"}' --wait
    jobsvc watch ID
    jobsvc status ID [--wait SECONDS]
    jobsvc cancel ID
    jobsvc list [--status S] [--type T] [--queue Q] [--limit N] [--cursor C]
    jobsvc queues ; jobsvc workers
    jobsvc dead-letters [--type T] [--queue Q] [--limit N] [--cursor C]
    jobsvc types
    jobsvc keys create --tenant acme --scopes submit,read [--name NAME]
    jobsvc keys list
    jobsvc keys revoke KEY_ID

The API key is ``--api-key``, else ``JOBSVC_API_KEY``, else the admin key ``jobsvc dev`` keeps in its data
directory (``.jobsvc/admin-key``).

On a terminal, ``list``, ``queues``, ``workers`` and ``dead-letters`` draw tables, and ``watch`` and
``submit --wait`` a live progress bar (:mod:`service.cli.terminal`). Piped, everything is JSON on stdout,
and ``watch`` prints each event of the job as one JSON line: ``{"id": ..., "event": ..., "data": ...}``.

Exit status: 0 done, 1 an error from the service (its title and detail on stderr), a wait that ran out
of time, or a watched or waited-for job that ended without succeeding; 2 a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from jobsvc_client import (
    DEFAULT_URL,
    ApiError,
    Job,
    JobsClient,
    JobStatus,
    JobsvcError,
    JobTimeout,
    ValidationFailed,
)
from jobsvc_client.models import SCOPES, Scope
from pydantic import BaseModel, ValidationError
from rich.console import Console

from service.cli.terminal import TABLES, JobView, print_table

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_WAIT_S = 60.0
#: how often ``watch`` reopens a stream that ended before the job did (a restarted API, a proxy's timeout)
RESUMES = 5


def main(argv: list[str] | None = None, *, console: Console | None = None) -> int:
    """Run the command; ``console`` is where it writes (tests pass a terminal of fixed width)."""
    console = console or Console()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits on --help (0) and on usage errors (2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    if args.command == "dev":
        from service.config import get_settings
        from service.devtools.supervisor import run_dev

        try:
            settings = get_settings()
        except ValidationError as exc:  # e.g. unsafe production settings
            return _fail(str(exc))
        return run_dev(settings)
    try:
        return _run(args, console)
    except JobTimeout as exc:
        _print(console, exc.job)
        return _fail(str(exc))
    except ValidationFailed as exc:
        fields = "".join(f"\n  {e.pointer}: {e.message}" for e in exc.errors)
        return _fail(f"{exc.problem.title}: {exc.problem.detail}{fields}")
    except ApiError as exc:
        return _fail(f"{exc.problem.title}: {exc.problem.detail}")
    except JobsvcError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    # the connection options are accepted before and after the command; SUPPRESS keeps a subcommand's
    # absent option from overwriting the one given before it
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--url", default=argparse.SUPPRESS, help="the API's base URL")
    connection.add_argument("--api-key", default=argparse.SUPPRESS, help="sent as a Bearer token")

    parser = argparse.ArgumentParser(prog="jobsvc", description="Run jobsvc, or submit and follow its jobs.")
    parser.add_argument(
        "--url",
        default=os.environ.get("JOBSVC_URL", DEFAULT_URL),
        help="the API's base URL (env JOBSVC_URL; default %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("JOBSVC_API_KEY"),
        help="API key (env JOBSVC_API_KEY; default: the key `jobsvc dev` made, if any)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("dev", help="run the API, a worker and (without JOBSVC_REDIS_URL) an embedded Redis")

    submit = commands.add_parser("submit", parents=[connection], help="submit a job and print it")
    submit.add_argument("type", metavar="TYPE", help="the job type, e.g. email.send")
    submit.add_argument(
        "--params", type=_json_object, default={}, metavar="JSON", help="the params as a JSON object"
    )
    submit.add_argument("--queue")
    submit.add_argument("--priority", type=int, help="0-9, 9 first")
    submit.add_argument("--delay", type=float, dest="delay_seconds", metavar="SECONDS")
    submit.add_argument("--max-attempts", type=int)
    submit.add_argument("--idempotency-key")
    submit.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"wait for the job to finish (default {DEFAULT_WAIT_S:g} s) and print it then; on a terminal, "
        "follow it with a progress bar instead, until it ends",
    )

    status = commands.add_parser("status", parents=[connection], help="print a job")
    status.add_argument("id", metavar="ID")
    status.add_argument(
        "--wait", type=float, metavar="SECONDS", help="first wait up to SECONDS for it to end"
    )

    cancel = commands.add_parser("cancel", parents=[connection], help="cancel a job and print it")
    cancel.add_argument("id", metavar="ID")

    listing = commands.add_parser("list", parents=[connection], help="list jobs, newest first")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--type")
    listing.add_argument("--queue")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", help="next_cursor of the previous page")

    watch = commands.add_parser(
        "watch", parents=[connection], help="follow a job to its end: a progress bar, or JSON lines piped"
    )
    watch.add_argument("id", metavar="ID")

    commands.add_parser("queues", parents=[connection], help="each queue's waiting, running and recent jobs")
    commands.add_parser("workers", parents=[connection], help="the live workers")
    dead = commands.add_parser("dead-letters", parents=[connection], help="the jobs that failed for good")
    dead.add_argument("--type")
    dead.add_argument("--queue")
    dead.add_argument("--limit", type=int, default=50)
    dead.add_argument("--cursor", help="next_cursor of the previous page")

    commands.add_parser("types", parents=[connection], help="list the job types and their params")

    api_keys = commands.add_parser("keys", parents=[connection], help="create, list and revoke API keys")
    key_commands = api_keys.add_subparsers(dest="key_command", required=True, metavar="KEYS_COMMAND")
    create = key_commands.add_parser("create", parents=[connection], help="create a key and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--scopes", required=True, type=_scopes, help="comma-separated: submit,read,cancel,admin"
    )
    create.add_argument("--name", default="", help="a note: who or what uses the key")
    key_commands.add_parser("list", parents=[connection], help="list keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", parents=[connection], help="revoke a key")
    revoke.add_argument("key_id", metavar="KEY_ID")
    return parser


def _run(args: argparse.Namespace, console: Console) -> int:
    with JobsClient(args.url, api_key=args.api_key or _dev_admin_key()) as client:
        result: BaseModel
        if args.command == "watch":
            return _outcome(_watch(client, args.id, console))
        if args.command == "submit":
            result = client.submit(
                args.type,
                args.params,
                queue=args.queue,
                priority=args.priority,
                delay_seconds=args.delay_seconds,
                max_attempts=args.max_attempts,
                idempotency_key=args.idempotency_key,
            )
            if args.wait is not None and console.is_terminal:
                return _outcome(_watch(client, result.id, console))
            if args.wait is not None:
                result = client.wait(result.id, timeout=args.wait)
                _print(console, result)
                return _outcome(result)
        elif args.command == "status":
            result = client.wait(args.id, timeout=args.wait) if args.wait else client.get(args.id)
        elif args.command == "cancel":
            result = client.cancel(args.id)
        elif args.command == "list":
            result = client.list(
                status=args.status, type=args.type, queue=args.queue, limit=args.limit, cursor=args.cursor
            )
        elif args.command == "queues":
            result = client.queues()
        elif args.command == "workers":
            result = client.workers()
        elif args.command == "dead-letters":
            result = client.list_dead_letters(
                type=args.type, queue=args.queue, limit=args.limit, cursor=args.cursor
            )
        elif args.command == "keys":
            if args.key_command == "create":
                result = client.create_key(args.tenant, args.scopes, name=args.name)
            elif args.key_command == "list":
                result = client.list_keys()
            else:
                client.revoke_key(args.key_id)
                print(f"revoked {args.key_id}", file=console.file)
                return EXIT_OK
        else:
            result = client.job_types()
    if console.is_terminal and type(result) in TABLES:
        print_table(console, result)
    else:
        _print(console, result)
    return EXIT_OK


def _watch(client: JobsClient, job_id: str, console: Console) -> Job:
    """Follow the job's events to its end, drawn as a progress bar on a terminal, else one JSON line
    each; a stream that ends early is resumed from the last event seen."""
    last_event_id: str | None = None
    job: Job | None = None
    with JobView(console) if console.is_terminal else contextlib.nullcontext() as view:
        for _ in range(RESUMES + 1):
            for event in client.job_events(job_id, last_event_id=last_event_id):
                last_event_id = event.id or last_event_id
                if view is None:
                    print(event.model_dump_json(), file=console.file, flush=True)
                else:
                    view.update(event)
                if event.event == "status":
                    job = event.job()
                    if job.is_finished:
                        return job
    raise JobsvcError(f"the events of job {job_id} ended {RESUMES + 1} times before the job did")


def _outcome(job: Job) -> int:
    return EXIT_OK if job.status == JobStatus.succeeded else EXIT_ERROR


def _dev_admin_key() -> str | None:
    """The admin key ``jobsvc dev`` keeps in its data directory, when there is one: the only use of the
    server's modules outside ``jobsvc dev``, and only when no key was given."""
    from service.config import Settings
    from service.devtools.supervisor import admin_key_path

    try:
        return admin_key_path(Settings()).read_text().strip() or None
    except (OSError, ValidationError):
        return None


def _scopes(text: str) -> list[Scope]:
    chosen = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(chosen - set(SCOPES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"scopes are {', '.join(SCOPES)}; not {', '.join(unknown) or 'none'}"
        )
    return [scope for scope in SCOPES if scope in chosen]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _print(console: Console, model: BaseModel) -> None:
    print(model.model_dump_json(indent=2), file=console.file)


def _fail(message: str) -> int:
    print(f"jobsvc: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
