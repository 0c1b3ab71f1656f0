"""Reaching a host and reading it: shells (local, SSH, recorded), inventories, fleets, probes, facts."""
