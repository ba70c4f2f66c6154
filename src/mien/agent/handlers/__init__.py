"""Built-in handlers, one module per concern. Each is registered in the ``mien.handlers``
entry-point group (see ``pyproject.toml``) exactly as a third-party handler would be."""
