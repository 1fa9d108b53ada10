"""The ``jobsvc`` command: ``jobsvc dev`` runs the stack; the other commands talk to a running API.

    jobsvc dev
    jobsvc submit reports.build --params '{"month": "2025-01"}' --wait
    jobsvc status ID [--wait SECONDS]
    jobsvc cancel ID
    jobsvc list [--status S] [--type T] [--queue Q] [--limit N] [--cursor C]
    jobsvc types
    jobsvc keys create --tenant acme --scopes submit,read [--name NAME]
    jobsvc keys list
    jobsvc keys revoke KEY_ID

The API key is ``--api-key``, else ``JOBSVC_API_KEY``, else the admin key ``jobsvc dev`` keeps in its data
directory (``.jobsvc/admin-key``).

Jobs print as JSON on stdout. Exit status: 0 done, 1 an error from the service (its title and detail on
stderr) or a wait that ran out of time, 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from jobsvc_client import (
    DEFAULT_URL,
    ApiError,
    JobsClient,
    JobStatus,
    JobsvcError,
    JobTimeout,
    ValidationFailed,
)
from jobsvc_client.models import SCOPES, Scope
from pydantic import BaseModel, ValidationError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_WAIT_S = 60.0


def main(argv: list[str] | None = None) -> int:
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
        return _run(args)
    except JobTimeout as exc:
        _print(exc.job)
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
        help=f"wait for the job to finish (default {DEFAULT_WAIT_S:g} s) and print it then",
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


def _run(args: argparse.Namespace) -> int:
    with JobsClient(args.url, api_key=args.api_key or _dev_admin_key()) as client:
        result: BaseModel
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
            if args.wait is not None:
                result = client.wait(result.id, timeout=args.wait)
        elif args.command == "status":
            result = client.wait(args.id, timeout=args.wait) if args.wait else client.get(args.id)
        elif args.command == "cancel":
            result = client.cancel(args.id)
        elif args.command == "list":
            result = client.list(
                status=args.status, type=args.type, queue=args.queue, limit=args.limit, cursor=args.cursor
            )
        elif args.command == "keys":
            if args.key_command == "create":
                result = client.create_key(args.tenant, args.scopes, name=args.name)
            elif args.key_command == "list":
                result = client.list_keys()
            else:
                client.revoke_key(args.key_id)
                print(f"revoked {args.key_id}")
                return EXIT_OK
        else:
            result = client.job_types()
    _print(result)
    return EXIT_OK


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


def _print(model: BaseModel) -> None:
    print(model.model_dump_json(indent=2))


def _fail(message: str) -> int:
    print(f"jobsvc: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
