"""Probes: what svdops reads from a host, and how it turns the answers into HostFacts.

- commands.py: every read-only command, keyed by the file a bundle records it in.
- gpu, topology, driver, cuda, system, storage, python_env: pure `parse_*(text)` functions that
  never raise; garbage gives None/empty (and, where useful, the problems found).
- collect_gpu, collect_software, collect_host: combine several answers per subject, ranking
  sources and writing a Note for each value that is not available.
- gather.py: `gather_facts(shell)`, the one entry point, runs the commands in parallel.
"""
