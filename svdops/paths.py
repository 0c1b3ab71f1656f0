"""Where svdops finds the files it runs with, in one lookup order per kind.

Profiles and playbooks: what the user names (an option, else an environment variable), then the user's
own folder ($XDG_CONFIG_HOME/svdops/, by default ~/.config/svdops/), then the copy the package ships.
The package's copy is the same in a checkout (svdops/playbooks and svdops/profiles link to the
top-level folders people edit) and in an installed wheel, so no lookup depends on where svdops was
installed from or on sys.prefix (a `pip install --user` has a prefix that is not the interpreter's).

Knowledge, report templates and the bench/plan data are read from the package only: they are versioned
with the code that reads them. `svdops paths` shows every place, in order, and which one is used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import svdops
from svdops.errors import BadInputError

PROFILE_PATH_ENV = "SVDOPS_PROFILE_PATH"
PLAYBOOKS_ENV = "SVDOPS_PLAYBOOKS"
XDG_CONFIG_ENV = "XDG_CONFIG_HOME"
PLAYBOOK_ENTRY = "site.yml"

# origins, in lookup order
FROM_OPTION = "option"
FROM_USER = "user"
FROM_PACKAGE = "package"


@dataclass(frozen=True)
class Place:
    """One folder on a lookup path and why it is there ("option", "$VAR", "user", "package")."""

    path: Path
    origin: str


def package_dir() -> Path:
    return Path(svdops.__file__).resolve().parent


def shipped(name: str) -> Path:
    """A folder the package carries. Resolved, so a checkout shows the top-level file people edit."""
    return (package_dir() / name).resolve()


def user_config_dir() -> Path:
    """$XDG_CONFIG_HOME/svdops, else ~/.config/svdops (a relative XDG value is ignored, as the spec says)."""
    base = os.environ.get(XDG_CONFIG_ENV, "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "svdops"


def _env_dirs(name: str) -> list[Place]:
    return [Place(Path(p), f"${name}") for p in os.environ.get(name, "").split(os.pathsep) if p.strip()]


def profile_places() -> list[Place]:
    """Folders searched for a profile by name; the first file of a name wins."""
    return [*_env_dirs(PROFILE_PATH_ENV),
            Place(user_config_dir() / "profiles", FROM_USER),
            Place(shipped("profiles"), FROM_PACKAGE)]


def playbook_places(explicit: Path | None = None) -> list[Place]:
    """Candidate playbook folders; the first that holds site.yml is used whole (roles are not mixed)."""
    places = [Place(explicit, FROM_OPTION)] if explicit is not None else []
    if os.environ.get(PLAYBOOKS_ENV):
        places.append(Place(Path(os.environ[PLAYBOOKS_ENV]), f"${PLAYBOOKS_ENV}"))
    places += [Place(user_config_dir() / "playbooks", FROM_USER), Place(shipped("playbooks"), FROM_PACKAGE)]
    return places


def holds_playbooks(place: Place) -> bool:
    return (place.path / PLAYBOOK_ENTRY).is_file()


def find_playbooks(explicit: Path | None = None) -> Place:
    """The folder ansible-runner runs site.yml from, or a BadInputError listing every place tried."""
    places = playbook_places(explicit)
    for place in places:
        if holds_playbooks(place):
            return Place(place.path.resolve(), place.origin)
    tried = ", ".join(f"{p.path} ({p.origin})" for p in places)
    raise BadInputError(f"cannot find the svdops playbooks ({PLAYBOOK_ENTRY})", where=tried,
                        hint=f"set ${PLAYBOOKS_ENV} to a folder with {PLAYBOOK_ENTRY} and roles/, or reinstall "
                             "svdops: the package ships its playbooks")


def shipped_data() -> Sequence[tuple[str, Path]]:
    """What the package reads from itself only, for `svdops paths`."""
    root = package_dir()
    return (("knowledge", root / "judge" / "knowledge"),
            ("report templates", root / "report" / "templates"),
            ("scenarios, plan anchors, model configs", root / "data"))
