"""Probes: pure `parse_*(text)` functions per subject, and `collect(shell)` that runs the commands.

`svdops.probe.gather.gather_facts(shell)` is the one entry point that builds a HostFacts.
"""
