"""The broker of application personas: who may ask for one, and where it runs.

A user asks for a lease on a persona; :mod:`~mien.server.broker.identity` checks the
token's person against ``access_controls.users`` (names and ``group:NAME``);
:mod:`~mien.server.broker.admission` admits it onto a sandbox host in the same transaction
that records it (or queues it, or refuses it as ``insufficient_resources``), preempting
lower-priority preemptible leases when that makes room; :mod:`~mien.server.broker.lifecycle`
ends leases (release, TTL expiry, a host that stopped reporting) and serves the queue again.
The routes are in :mod:`mien.server.api.broker` and :mod:`mien.server.api.broker_host`.
"""
