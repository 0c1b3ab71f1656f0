"""The operating system: distribution and release."""

from __future__ import annotations

from collections.abc import Iterator

from svdops.findings import Finding
from svdops.host.facts import HostFacts
from svdops.judge.profiles import Profile
from svdops.judge.rules.common import FAIL, PASS, UNKNOWN, not_available, version_sort_key
from svdops.versions import parse_version


def os_rules(facts: HostFacts, profile: Profile) -> Iterator[Finding]:
    want = profile.os
    if want.id:
        title = "operating system"
        if facts.os.id is None:
            yield Finding("os.id", title, UNKNOWN, want.id, not_available(facts, "os.id"))
        elif facts.os.id.lower() == want.id.lower():
            yield Finding("os.id", title, PASS, want.id, facts.os.pretty_name or facts.os.id)
        else:
            yield Finding("os.id", title, FAIL, want.id, facts.os.pretty_name or facts.os.id,
                          hint=f"reinstall the host with {want.id.capitalize()}: svdops probes and provisions only it")
    if want.releases:
        title = "OS release"
        expected = " or ".join(want.releases)
        have = facts.os.version_id
        if have is None:
            yield Finding("os.release", title, UNKNOWN, expected, not_available(facts, "os.version_id"))
        elif have in want.releases:
            yield Finding("os.release", title, PASS, expected, have)
        else:
            have_v, newest = parse_version(have), max((parse_version(r) for r in want.releases), key=version_sort_key)
            if have_v is not None and newest is not None and have_v < newest:
                hint = f"sudo do-release-upgrade  (repeat until VERSION_ID in /etc/os-release is {expected})"
            else:
                hint = f"reinstall the host with Ubuntu {expected}: a release cannot be downgraded in place"
            yield Finding("os.release", title, FAIL, expected, have, hint=hint)
