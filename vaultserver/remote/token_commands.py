"""The command-line body of `vaultserver worker-token create NAME | list | revoke NAME` (cli.py holds the
dispatch). `create` prints the join string as its LAST line, alone, so a script can take it with `tail -1`.
"""

from __future__ import annotations

import argparse

from vaultserver.services import Services
from vaultserver.services.workers import WorkerView

ACTOR = "owner (cli)"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tokens = sub.add_parser("worker-token", help="let another machine convert for this Vault: tokens")
    tokens_sub = tokens.add_subparsers(dest="worker_token_command", required=True)
    create = tokens_sub.add_parser("create", help="a new worker token; its join string is printed last")
    create.add_argument("name", help="what to call the machine (letters, digits, . _ -)")
    tokens_sub.add_parser("list", help="workers, what they can encode, what they convert now")
    revoke = tokens_sub.add_parser("revoke", help="refuse a worker's token from its next call on")
    revoke.add_argument("name")


def cmd_worker_token(args: argparse.Namespace, services: Services) -> int:
    if args.worker_token_command == "create":
        created = services.add_worker(args.name, actor=ACTOR)
        print(f"Created worker {created.name}. On that machine (with Vault installed), run:\n"
              f"  vaultserver worker --join 'JOIN STRING'\n"
              "with the join string below. It holds the worker's secret: keep it to yourself, it is shown "
              f"only now.\nTo stop the worker: vaultserver worker-token revoke {created.name}\n")
        print(created.join_string)
    elif args.worker_token_command == "list":
        workers = services.workers.list()
        for worker in workers:
            print(_line(worker))
        if not workers:
            print("No workers yet. Add one with: vaultserver worker-token create NAME")
    elif args.worker_token_command == "revoke":
        services.workers.revoke(args.name, actor=ACTOR)
        print(f"Revoked worker {args.name}: its next call is refused, and its job goes back to the queue.")
    return 0


def _line(worker: WorkerView) -> str:
    state = "revoked" if worker.revoked else "active"
    encoders = ",".join(worker.encoders) or "-"
    job = "-"
    if worker.job_id:
        done = f" {worker.progress:.0%}" if worker.progress is not None else ""
        job = f"{worker.job_id} {worker.stage or ''}{done}".strip()
    seen = f"{worker.last_seen_at:%Y-%m-%d %H:%M}" if worker.last_seen_at else "never"
    where = f" from {worker.address}" if worker.address else ""
    return f"{worker.name:20} {state:8} {encoders:30} job {job:20} last seen {seen}{where}"
