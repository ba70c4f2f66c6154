"""The orchestrator: fleet rules evaluated by the server over aggregates of tag selectors.

``documents`` reads fleet rule documents; ``aggregates`` loads the newest values and
machine-rule phases and builds each rule's scope; ``leader`` holds the database lease that
makes exactly one replica evaluate; ``actions`` carries out (and undoes) what a rule does
through the same store paths as the API; ``loop`` ties them together as a replica's
background task. The rule semantics are :mod:`mien.rules.fleet`'s.
"""
