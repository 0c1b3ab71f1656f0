"""`svdops knowledge refresh`: rebuild the knowledge tables from upstream, from a folder or online."""

from __future__ import annotations

import datetime
import difflib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import click
import yaml

import svdops.judge.knowledge as kb
from svdops.cli.errors import handles_errors
from svdops.errors import BadInputError, HostUnreachableError
from svdops.files import atomic_write_text
from svdops.judge.knowledge import refresh as rf
from svdops.versions import parse_version

MAX_BYTES = 64 * 1024 * 1024  # one source; PyPI's torch JSON is about 1 MB, the torch wheel index a few MB
TIMEOUT_S = 30
PYPI = "https://pypi.org/pypi"
NVIDIA_REDIST = "https://developer.download.nvidia.com/compute/cuda/redist/"
PYTORCH_INDEX = "https://download.pytorch.org/whl/torch/"
MIRROR_ENV = "SVDOPS_KNOWLEDGE_MIRROR"


@click.group("knowledge")
def knowledge() -> None:
    """The dated compatibility tables svdops judges by: how fresh they are, and refreshing them."""


@knowledge.command("refresh")
@click.option("--from", "folder", type=click.Path(path_type=Path),
              help="A folder of saved upstream sources laid out as tests/fixtures/upstream/ (air-gapped labs).")
@click.option("--online", is_flag=True, help="Fetch the sources from PyPI, NVIDIA and download.pytorch.org.")
@click.option("--mirror", metavar="URL", envvar=MIRROR_ENV, show_envvar=True,
              help="With --online: fetch from a mirror that serves the upstream paths (/pypi/<name>/json, "
                   "/compute/cuda/redist/, /whl/torch/) under this http(s) base URL instead.")
@click.option("--write", is_flag=True, help="Rewrite the YAML files (comments and untouched rows kept) and "
                                            "bump their version and the as-of date.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the unified diff of the YAML files as well.")
@click.option("--knowledge-dir", type=click.Path(path_type=Path, file_okay=False),
              help="The knowledge folder to compare with and write to (default: the package's own).")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="The date --write stamps (default: today).")
@handles_errors
def refresh_cmd(folder: Path | None, online: bool, mirror: str | None, write: bool, show_diff: bool,
                knowledge_dir: Path | None, as_of: datetime.datetime | None) -> None:
    """Rebuild the tables from machine-readable upstream sources and print what would change.

    \b
    Regenerated: CUDA release -> driver (NVIDIA redistrib_<X.Y.Z>.json), torch releases and their Python
    range (PyPI), torch CUDA variants (download.pytorch.org/whl/torch/), diffusers/transformers Python and
    torch minimums (PyPI). Kept, and listed as kept: every row the sources cannot say.
    \b
    + added  ~ changed  ? on upstream but not proposed  = kept (hand-sourced)
    """
    if (folder is None) == (not online):
        raise BadInputError("say where the sources come from: --from DIR or --online (one of them)",
                            hint="svdops knowledge refresh --from tests/fixtures/upstream")
    if folder is not None and mirror and (click.get_current_context().get_parameter_source("mirror")
                                          == click.core.ParameterSource.COMMANDLINE):
        raise BadInputError("--mirror goes with --online, not with --from DIR")
    base = _mirror_base(mirror) if online and mirror else None
    target = knowledge_dir or Path(kb.__file__).parent
    texts = _shipped(target)
    urls: dict[str, str] = {}  # online: source path -> the URL it came from, for the messages
    today = as_of.date() if as_of else datetime.date.today()
    try:
        sources = _read_folder(folder) if folder is not None else _fetch_online(texts, base, urls)
        result = rf.refresh(sources, texts, today=today)
    except rf.UpstreamSourceError as err:
        if err.where not in urls:
            raise
        raise rf.UpstreamSourceError(err.message, where=urls[err.where],
                                     hint="the answer is not what that URL serves upstream: check the mirror, or "
                                          "save the sources and use --from DIR") from None
    lines = rf.describe(result)
    click.echo("\n".join(lines) if lines else "nothing to refresh")
    if show_diff:
        for name in kb.FILES:
            if result.texts[name] != texts[name]:
                diff = difflib.unified_diff(texts[name].splitlines(True), result.texts[name].splitlines(True),
                                            f"a/{name}", f"b/{name}")
                click.echo("".join(diff), nl=False)
    changed = result.changed_files
    if write and changed:
        for name in (*changed, "cuda.yaml"):
            atomic_write_text(target / name, result.texts[name])
        click.echo(f"wrote {', '.join(sorted(set(changed) | {'cuda.yaml'}))} in {target} (as of {today.isoformat()})")
    elif changed:
        click.echo(f"{len(result.of('added')) + len(result.of('changed'))} row(s) would change: "
                   "run again with --write to rewrite the files", err=True)


def _shipped(folder: Path) -> dict[str, str]:
    texts = {}
    for name in kb.FILES:
        path = folder / name
        try:
            texts[name] = path.read_text(encoding="utf-8")
            yaml.safe_load(texts[name])
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise BadInputError(f"cannot read the knowledge file: {exc}", where=str(path),
                                hint="--knowledge-dir must hold cuda.yaml, torch.yaml, libraries.yaml, gpus.yaml"
                                ) from None
    return texts


def _read_folder(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        raise BadInputError("not a folder of upstream sources", where=str(folder),
                            hint="lay it out as tests/fixtures/upstream/ (nvidia/, pypi/, pytorch/)")
    sources = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.lower() == "readme.md":
            continue
        if path.stat().st_size > MAX_BYTES:
            raise BadInputError(f"larger than {MAX_BYTES // 2**20} MiB: not an upstream source", where=str(path))
        sources[path.relative_to(folder).as_posix()] = path.read_bytes()
    if not any(p.startswith(("nvidia/", "pypi/", "pytorch/")) for p in sources):
        raise BadInputError("no nvidia/, pypi/ or pytorch/ sources in it", where=str(folder),
                            hint="lay it out as tests/fixtures/upstream/ (see its README.md)")
    return sources


def _mirror_base(mirror: str) -> str:
    """The mirror's base URL, checked: http(s), a host, no query, fragment or credentials."""
    parts = urllib.parse.urlsplit(mirror.strip())
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
            or parts.username or parts.password):
        raise BadInputError(f"not an http(s) base URL: {mirror!r}", where=f"--mirror / {MIRROR_ENV}",
                            hint="e.g. --mirror http://127.0.0.1:8000 (serving /pypi/..., /compute/cuda/redist/, "
                                 "/whl/torch/)")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _upstream(url: str, base: str | None) -> str:
    """An upstream URL, or the same path under the mirror."""
    if base is None:
        return url
    parts = urllib.parse.urlsplit(url)
    return base + parts.path


def _get(url: str, *, allow_http: bool = False) -> bytes:
    if not (url.startswith("https://") or (allow_http and url.startswith("http://"))):
        raise BadInputError("only https:// sources are fetched", where=url)
    request = urllib.request.Request(url, headers={"User-Agent": "svdops-knowledge-refresh",  # noqa: S310 - http(s) only
                                                   "Accept": "application/json, text/html"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - the URLs above, or the mirror's
            data: bytes = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise HostUnreachableError(f"cannot fetch: the server answered HTTP {exc.code} {exc.reason}", where=url,
                                   hint="nothing was written; check the URL (a mirror must serve the upstream paths), "
                                        "try again later, or save the sources and use --from DIR"
                                   ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise HostUnreachableError(f"cannot fetch: {exc}", where=url,
                                   hint="without network: save the sources and use --from DIR") from None
    if len(data) > MAX_BYTES:
        raise BadInputError(f"answer larger than {MAX_BYTES // 2**20} MiB: refused", where=url)
    return data


def _fetch_online(texts: dict[str, str], base: str | None, urls: dict[str, str]) -> dict[str, bytes]:
    """The upstream sources (or the mirror's), by the paths a saved folder uses; `urls` says where each came from."""
    sources: dict[str, bytes] = {}

    def get(path: str, upstream_url: str) -> bytes:
        url = _upstream(upstream_url, base)
        click.echo(f"fetching {url}", err=True)
        sources[path] = _get(url, allow_http=base is not None)
        urls[path] = url
        return sources[path]

    for name in rf.PYPI_PROJECTS:
        get(f"pypi/{name}.json", f"{PYPI}/{name}/json")
    libs = yaml.safe_load(texts["libraries.yaml"]).get("libraries") or []
    for name in rf.LIBRARIES:
        floor = min((v for r in libs if r.get("name") == name and (v := parse_version(str(r["version"]))) is not None),
                    default=None)
        if floor is None:
            continue
        for release in rf.library_releases(sources, name, floor):
            if release.min_torch is None:
                get(f"pypi/{name}/{release.version}.json", f"{PYPI}/{name}/{release.version}/json")
    listing = get("nvidia/index.html", NVIDIA_REDIST).decode("utf-8", "replace")
    del sources["nvidia/index.html"]
    lowest: dict[tuple[int, int], tuple[int, str]] = {}
    for major, minor, patch in set(re.findall(r"redistrib_(\d+)\.(\d+)\.(\d+)\.json", listing)):
        key = (int(major), int(minor))
        if key >= (11, 0) and (key not in lowest or int(patch) < lowest[key][0]):
            lowest[key] = (int(patch), f"redistrib_{major}.{minor}.{patch}.json")
    if not lowest:
        raise rf.UpstreamSourceError("no redistrib_<X.Y.Z>.json links (CUDA 11 or newer): not NVIDIA's redist "
                                     "listing", where=urls["nvidia/index.html"],
                                     hint="nothing was written; check the URL (or the mirror) serves the listing")
    for _key, (_patch, name) in sorted(lowest.items()):
        get(f"nvidia/{name}", NVIDIA_REDIST + name)
    get("pytorch/torch.html", PYTORCH_INDEX)
    print(f"fetched {len(sources)} sources", file=sys.stderr)
    return sources
