"""`svdops paths`: every place svdops looks for profiles and playbooks, in order, and which is used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from svdops import paths
from svdops.cli.errors import handles_errors
from svdops.errors import BadInputError


def _profile_rows() -> list[dict[str, Any]]:
    rows = []
    for order, place in enumerate(paths.profile_places(), 1):
        names = sorted(p.stem for p in place.path.glob("*.y*ml")) if place.path.is_dir() else []
        state = f"{len(names)} profile(s)" if names else ("empty" if place.path.is_dir() else "absent")
        rows.append({"order": order, "origin": place.origin, "path": str(place.path), "state": state,
                     "profiles": names})
    return rows


def _playbook_rows(explicit: Path | None) -> list[dict[str, Any]]:
    try:
        used: paths.Place | None = paths.find_playbooks(explicit)
    except BadInputError:
        used = None
    rows = []
    for order, place in enumerate(paths.playbook_places(explicit), 1):
        if used is not None and place.origin == used.origin and place.path.resolve() == used.path:
            state = "used"
        elif paths.holds_playbooks(place):
            state = "shadowed"
        else:
            state = f"no {paths.PLAYBOOK_ENTRY}"
        rows.append({"order": order, "origin": place.origin, "path": str(place.path), "state": state})
    return rows


@click.command("paths")
@click.option("--playbooks", "explicit", type=click.Path(path_type=Path, file_okay=False),
              help="A playbooks folder to put first, as `provision` would be given it.")
@click.option("--json", "as_json", is_flag=True, help="The same as JSON.")
@handles_errors
def paths_cmd(explicit: Path | None, as_json: bool) -> None:
    """Where profiles and playbooks are looked up (first match wins), and the data the package ships.

    \b
    profiles:  $SVDOPS_PROFILE_PATH, ~/.config/svdops/profiles, then the package's (by name; first wins)
    playbooks: $SVDOPS_PLAYBOOKS, ~/.config/svdops/playbooks, then the package's (first with site.yml)
    """
    document = {
        "profiles": _profile_rows(),
        "playbooks": _playbook_rows(explicit),
        "shipped": [{"what": what, "path": str(path), "state": "present" if path.is_dir() else "absent"}
                    for what, path in paths.shipped_data()],
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo("profiles (a name is taken from the first folder that has it):")
    for row in document["profiles"]:
        click.echo(f"  {row['order']}. {row['origin']:<22} {row['path']}  [{row['state']}]")
    click.echo("playbooks (the first folder with site.yml is used whole):")
    for row in document["playbooks"]:
        click.echo(f"  {row['order']}. {row['origin']:<22} {row['path']}  [{row['state']}]")
    click.echo("shipped with the package (read from there only):")
    for row in document["shipped"]:
        click.echo(f"  {row['what']:<40} {row['path']}  [{row['state']}]")

