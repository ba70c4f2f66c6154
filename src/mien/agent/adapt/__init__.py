"""The adaptation runtime on the machine: telemetry, baselines, external data, the loop.

:mod:`~mien.agent.adapt.telemetry` samples the learning domains a persona grants,
:mod:`~mien.agent.adapt.baselines` learns what is normal (and how fast to forget it, from
``decay_rate``), :mod:`~mien.agent.adapt.sources` polls the persona's external data
sources. The agent's adaptation loop feeds their output to the persona's rules.
"""
