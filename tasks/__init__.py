"""Prefect tasks: thin wrappers that give the pure `rt_displayr` modules retries, caching and logs.

Tasks take plain data (connection dataclasses, ticket summaries), never a client object: a client
holds sockets and a session cookie, which neither pickles to a Dask worker nor hashes into a
stable cache key.
"""
