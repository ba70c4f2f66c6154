"""The adaptation runtime on the machine: telemetry, baselines, external data, the loop.

:mod:`~mien.agent.adapt.telemetry` samples the learning domains a persona grants,
:mod:`~mien.agent.adapt.baselines` learns what is normal (and how fast to forget it, from
``decay_rate``), :mod:`~mien.agent.adapt.sources` polls the persona's external data
sources. The agent's adaptation loop (:mod:`~mien.agent.adapt.loop`) feeds their output to
the persona's rules and carries out the actions they decide
(:mod:`~mien.agent.adapt.executors`), keeping what it must not forget in ``state.db``
(:mod:`~mien.agent.adapt.ledger`); docs/adaptation.md describes it.
"""
