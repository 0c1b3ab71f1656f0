"""The files a check leaves behind: JSON documents for scripts and the report, JUnit XML for CI.

Built here once, for one host and for a fleet: a fleet document embeds the single-host document and
a fleet suite holds the single-host suite, so they cannot drift apart. The schema names are defined
here only; svdops.report.checks reads what these functions write. Pure: dicts and ElementTrees in,
text out, nothing written.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from svdops.findings import Finding, Status
from svdops.text import printable

if TYPE_CHECKING:  # the report imports the schema names without loading the host and rules layers
    from svdops.host.fleet import HostResult
    from svdops.judge.check import CheckReport
    from svdops.judge.fleet_check import FleetCheck, FleetFacts

CHECK_SCHEMA = "svdops.check/1"
FLEET_CHECK_SCHEMA = "svdops.fleet-check/1"
FLEET_FACTS_SCHEMA = "svdops.fleet-facts/1"


def finding_document(f: Finding) -> dict[str, Any]:
    return {"id": f.id, "key": f.key, "title": f.title, "status": f.status.value, "expected": f.expected,
            "actual": f.actual, "hint": f.hint, "subject": f.subject}


def check_document(report: CheckReport) -> dict[str, Any]:
    """`svdops.check/1`: one host's findings with the snapshot they were judged on."""
    return {
        "schema": CHECK_SCHEMA,
        "host": report.facts.hostname,
        "profile": report.profile.name,
        "profile_source": str(report.profile.source),
        "summary": report.summary,
        "failed": report.failed,
        "allow_unknown": report.allow_unknown,
        "findings": [finding_document(f) for f in report.findings],
        "knowledge": knowledge_document(),
        "facts": report.facts.to_dict(),
    }


def knowledge_document() -> dict[str, Any]:
    """What the verdicts rest on: the day the knowledge was last checked and each table's version. A PASS
    is only as current as this; a reader of an old check file can tell how old its judgement is."""
    from svdops.judge import knowledge as kb  # loaded on use: the report imports this module for its names

    return {"as_of": kb.knowledge_as_of(), "versions": dict(sorted(kb.knowledge().versions.items()))}


def _host_entry(r: HostResult) -> dict[str, Any]:
    t = r.target
    return {
        "name": t.name, "address": t.address, "port": t.port, "user": t.user, "groups": list(t.groups),
        "status": r.status.value, "message": r.message, "hint": r.hint,
        "duration_s": round(r.duration_s, 3), "bundle": str(r.bundle) if r.bundle else None,
    }


def fleet_facts_document(fleet: FleetFacts) -> dict[str, Any]:
    """`svdops.fleet-facts/1`: each host's connection details and status, and its facts when it answered."""
    tally = fleet.tally
    return {
        "schema": FLEET_FACTS_SCHEMA,
        "summary": {"hosts": len(fleet.hosts), "not_probed": tally.not_checked, "by_status": tally.by_status},
        "hosts": [{**_host_entry(r), "facts": r.facts.to_dict() if r.facts else None} for r in fleet.hosts],
    }


def fleet_check_document(fleet: FleetCheck) -> dict[str, Any]:
    """`svdops.fleet-check/1`: the single-host document embedded under each checked host's "check"."""
    tally = fleet.tally
    return {
        "schema": FLEET_CHECK_SCHEMA,
        "profile": fleet.profile.name,
        "exit_code": fleet.exit_code,
        "summary": {"hosts": len(fleet.hosts), "checked": fleet.checked, "failed": fleet.failed,
                    "not_checked": tally.not_checked, "by_status": tally.by_status},
        "hosts": [{**_host_entry(h.probe), "check": check_document(h.report) if h.report else None}
                  for h in fleet.hosts],
    }


def json_text(document: dict[str, Any]) -> str:
    """A document as JSON text, indented. A fleet document's `hosts` are one compact line each: a check of
    100 hosts is megabytes, and json's indenting encoder is pure Python (7x slower than the compact one,
    a fifth of svdops' own CPU on a 100-host check); one host per line still reads with grep and head."""
    hosts = document.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        return json.dumps(document, indent=2) + "\n"
    parts = []
    for key, value in document.items():
        if key == "hosts":
            lines = ",\n".join("    " + json.dumps(host) for host in hosts)
            parts.append(f'  "hosts": [\n{lines}\n  ]')
        else:
            parts.append(f"  {json.dumps(key)}: " + json.dumps(value, indent=2).replace("\n", "\n  "))
    return "{\n" + ",\n".join(parts) + "\n}\n"


# ---------------------------------------------------------------- JUnit

# XML 1.0 has no escape for most control characters: one ESC from a host's nvidia-smi or pip output in
# a finding would make the whole file unreadable to CI. svdops.text writes them (and C1 controls, which
# XML allows but a terminal obeys when someone cats the file) as visible escapes such as \x1b instead.
def _xml_safe(tree: ET.Element) -> ET.Element:
    for elem in tree.iter():
        for key, value in elem.attrib.items():
            elem.set(key, printable(value))
        if elem.text:
            elem.text = printable(elem.text)
    return tree


def check_suite(report: CheckReport, *, name: str | None = None) -> ET.Element:
    """One testsuite, one testcase per finding. warn passes with a note; skip is <skipped/>; unknown (a required
    check that could not look) is a <failure type="svdops.unknown">, or <skipped/> with --allow-unknown.

    CI systems key their history on classname and name: keep both stable (`svdops.<subject>`,
    `<key>: <title>`), or every check looks new after an upgrade.
    """
    failures, skipped = _junit_counts(report)
    suite = ET.Element("testsuite", name=name or f"svdops check {report.facts.hostname} ({report.profile.name})",
                       tests=str(len(report.findings)), failures=str(failures), errors="0",
                       skipped=str(skipped), timestamp=report.facts.collected_at,
                       hostname=report.facts.hostname)
    knowledge = knowledge_document()
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="svdops.knowledge_as_of", value=knowledge["as_of"])
    for file, version in knowledge["versions"].items():
        ET.SubElement(properties, "property", name=f"svdops.knowledge.{file}", value=version)
    for f in report.findings:
        case = ET.SubElement(suite, "testcase", classname=f"svdops.{f.id.split('.')[0]}", name=f"{f.key}: {f.title}")
        detail = f"expected: {f.expected}\nactual: {f.actual}" + (f"\nfix: {f.hint}" if f.hint else "")
        if f.status is Status.FAIL:
            failure = ET.SubElement(case, "failure", message=f"expected {f.expected}, got {f.actual}",
                                    type="svdops.fail")
            failure.text = detail
        elif f.status is Status.UNKNOWN and not report.allow_unknown:
            unknown = ET.SubElement(case, "failure", message=f"could not look: {f.actual}", type="svdops.unknown")
            unknown.text = "UNKNOWN (a required check that could not look is not a pass)\n" + detail
        elif f.status is Status.UNKNOWN:
            ET.SubElement(case, "skipped", message=f"unknown (allowed): {f.actual}")
        elif f.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=f.actual or "not applicable")
        elif f.status is Status.WARN:
            ET.SubElement(case, "system-out").text = "WARNING\n" + detail
    return _xml_safe(suite)


def _junit_counts(report: CheckReport) -> tuple[int, int]:
    """(failures, skipped): an unknown counts as a failure, or as skipped when unknowns are allowed."""
    s = report.summary
    unknown = s.get(Status.UNKNOWN.value, 0)
    if report.allow_unknown:
        return s.get("fail", 0), s.get("skip", 0) + unknown
    return s.get("fail", 0) + unknown, s.get("skip", 0)


def check_junit(report: CheckReport) -> ET.Element:
    failures, skipped = _junit_counts(report)
    suites = ET.Element("testsuites", name="svdops", tests=str(len(report.findings)),
                        failures=str(failures), skipped=str(skipped))
    suites.append(check_suite(report))
    return suites


def unchecked_suite(r: HostResult) -> ET.Element:
    """A host that could not be checked is a suite with one errored testcase, so CI shows it red
    instead of silently missing."""
    suite = ET.Element("testsuite", name=f"svdops check {r.target.name}", tests="1", failures="0",
                       errors="1", skipped="0", hostname=r.target.name)
    case = ET.SubElement(suite, "testcase", classname="svdops.ssh", name=f"{r.target.name}: reachable")
    error = ET.SubElement(case, "error", message=f"{r.status.value}: {r.message}",
                          type=f"svdops.{r.status.name.lower()}")
    error.text = f"{r.target.url}\n{r.message}" + (f"\nfix: {r.hint}" if r.hint else "")
    return _xml_safe(suite)


def fleet_junit(fleet: FleetCheck) -> ET.Element:
    """One testsuite per host, named after the host's label (the single-host suite for checked hosts)."""
    suites = ET.Element("testsuites", name="svdops fleet")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for h in fleet.hosts:
        if h.report is not None:
            suite = check_suite(h.report, name=f"svdops check {h.name} ({h.report.profile.name})")
        else:
            suite = unchecked_suite(h.probe)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        suites.append(suite)
    for key, value in totals.items():
        suites.set(key, str(value))
    return suites


def junit_text(root: ET.Element) -> str:
    indented = copy.deepcopy(root)  # ET.indent rewrites whitespace in place; the caller's tree stays as built
    ET.indent(indented)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(indented, encoding="unicode") + "\n"
