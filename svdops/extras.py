"""The optional parts of svdops, what each unlocks, and the one way a missing one is named to the user.

The base install runs `facts`, `check` and `plan` on this host or a recorded folder; every other job has
an extra (pyproject.toml [project.optional-dependencies]). The hint names pip first and says how pipx
and uv users get the same extra, since an admin box usually has svdops as a tool, not in a project venv.
"""

from __future__ import annotations

# extra -> what it unlocks (README's install section says the same)
EXTRAS = {
    "fleet": "`check`/`facts` over SSH (--host, --inventory)",
    "provision": "`provision` (Ansible playbooks through ansible-runner)",
    "report": "`report` (HTML report, CSV/Parquet export)",
    "bench": "`bench` (torch + diffusers; brings [report])",
    "optimize": "`bench --optimize max` (torchao fp8)",
}

# the commands whose code needs an extra at import time
COMMAND_EXTRAS = {"bench": "bench", "burnin": "bench", "report": "report", "provision": "provision"}


def install_hint(extra: str) -> str:
    spec = f"svdops[{extra}]"
    return (f"install the [{extra}] extra: pip install '{spec}' "
            f"(pipx: pipx install --force '{spec}'; uv: uv tool install '{spec}')")
