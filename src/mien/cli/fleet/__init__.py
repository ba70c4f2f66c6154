"""Commands for a fleet: the server (``mien server``), its agents (``mien agent``) and the
operator's client (``mien persona|instance|bind|audit|token|config``)."""
