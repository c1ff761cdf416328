"""Conversion on another machine: `worker.py` converts for a Vault over HTTPS alone; `pinned.py` opens HTTPS
connections that trust the CA the join string pins (`vaultserver/join_string.py`) and nothing else;
`worker_command.py` and `token_commands.py` are their command lines. The server side of the tokens is
`services.workers`; of the jobs, `pipeline.remote_jobs`.
"""
