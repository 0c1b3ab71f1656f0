"""Profiles the tests write out: one copy each, so suites that judge the same hosts judge them alike."""

from __future__ import annotations

# Leaves the Python stack out: the healthy recordings pass it (exit 0, warnings allowed), the broken ones
# still fail on what is broken.
GPU_ONLY = """\
description: "an Ubuntu host with a working NVIDIA driver and a GPU; the Python stack is not judged"
os:
  id: ubuntu
driver:
  persistence_mode: true
gpu:
  min_count: 1
"""
