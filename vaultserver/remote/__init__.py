"""Conversion on another machine: how a worker finds and trusts a Vault, the half both ends share.

`join` is the join string the owner hands to a worker machine (the server's URL, the pin of Vault's CA
certificate and the worker's secret token); `pinned` opens HTTPS connections that trust that CA and nothing
else, after checking it against the pin. The server side of the tokens is `services.workers`.
"""
