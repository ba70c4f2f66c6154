"""The ``mien`` command: thin commands over the spec, the agent, the client and the server."""
