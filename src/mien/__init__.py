"""mien: personas for Linux machines.

A persona is a declared role (settings, environment, files, software, schedules, command
rules) that an agent applies on each machine, switches live, rolls back exactly, and that
one service manages for a fleet. See README.md and docs/.
"""

__version__ = "0.1.0"
