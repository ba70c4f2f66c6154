"""The Persona Manager Service (``mien server``): personas, instances, bindings, activations,
remote commands and audit over a REST API, on SQLite or on PostgreSQL with many replicas.

Entry point: :func:`mien.server.app.create_app`. See ``docs/api.md`` for the API.
"""
