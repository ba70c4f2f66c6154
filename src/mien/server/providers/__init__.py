"""Providers: what a machine cannot do to itself (resize its VM, call the user's cloud or
hypervisor automation), done by the server on a machine's or a fleet rule's behalf."""
