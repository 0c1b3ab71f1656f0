"""Judging facts against a profile: profiles, the sourced knowledge base, rules, check documents."""
