"""Profiles: every shipped one loads; every broken one fails with the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from svdops.errors import ProfileError
from svdops.judge.profiles import DEFAULT_PROFILE, PROFILE_PATH_ENV, VersionSpec, list_profiles, load_profile
from svdops.versions import Version
from tests.support.paths import PROFILES

FIXTURES = PROFILES
SHIPPED = ("svd-host", "seed-2023", "workstation-24gb", "a100-80gb-x8-nvlink", "h100-sxm-x8-nvlink", "ci-cpu")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.description
    assert profile.source.name == f"{name}.yaml"
    assert profile.svd.scenario is not None


def test_list_profiles_has_every_shipped_profile_once() -> None:
    names = [p.name for p in list_profiles()]
    assert set(SHIPPED) <= set(names)
    assert len(names) == len(set(names))


def test_default_profile_wants_one_gpu_for_svd_xt() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    assert profile.gpu.min_count == 1
    assert profile.svd.scenario == "svd-xt-25f"
    # no hard version pins: only presence or floors
    assert profile.python.version is None and profile.cuda.toolkit is None and profile.driver.version is None


def test_seed_profile_holds_the_2023_stack() -> None:
    seed = load_profile("seed-2023")
    assert seed.os.releases == ("20.04",)
    assert seed.cuda.toolkit is not None and seed.cuda.toolkit.contains(Version.parse("11.3.1"))
    assert seed.cuda.cudnn is not None and seed.cuda.cudnn.contains(Version.parse("8.2.0"))
    assert seed.cuda.nccl is not None and seed.cuda.nccl.is_any
    assert seed.python.env == "conda"
    assert seed.python.version is not None and seed.python.version.contains(Version.parse("3.8.10"))
    assert dict(seed.python.packages)["torch"].contains(Version.parse("1.10.2"))
    assert seed.ram.min_gib == 64 and seed.ram.recommended_gib == 128
    assert seed.storage.scratch is not None and seed.storage.scratch.level == "raid0" and seed.storage.scratch.nvme
    assert seed.storage.data is not None and set(seed.storage.data.levels) == {"raid5", "raid6"}
    assert seed.gpu.nvlink_all_pairs


def test_ci_cpu_needs_no_gpu_and_the_cpu_wheel() -> None:
    ci = load_profile("ci-cpu")
    assert not ci.requires_gpu and ci.gpu.max_count == 0
    assert ci.python.torch_cpu
    assert ci.svd.scenario == "tiny"


def test_extends_merges_sections_and_null_clears() -> None:
    child = load_profile(str(FIXTURES / "child.yaml"))
    assert child.extends == "base"
    assert child.gpu.min_count == 2  # inherited
    assert child.gpu.min_vram_gib == 40  # overridden
    assert dict(child.python.packages) == {"torch": VersionSpec.parse(">=2.6")}  # transformers cleared
    assert [p.name for p in child.chain] == ["base.yaml", "child.yaml"]
    assert child.description == "child of base"


def test_shipped_x8_profiles_inherit_from_svd_host() -> None:
    h100 = load_profile("h100-sxm-x8-nvlink")
    assert h100.extends == "svd-host"
    assert "diffusers" in dict(h100.python.packages)
    assert h100.gpu.min_count == 8 and h100.gpu.nvlink_all_pairs and h100.driver.flavor == "open"
    assert load_profile("a100-80gb-x8-nvlink").driver.flavor is None


@pytest.mark.parametrize(
    ("file", "where_suffix", "message_part"),
    [
        ("syntax-error.yaml", ": line 4", "YAML syntax error at line 4"),
        ("wrong-type.yaml", ": gpu.min_vram_gib", "expected a number, got 'lots'"),
        ("unknown-key.yaml", ": gpu.min_vram_gb", "did you mean 'min_vram_gib'?"),
        ("unknown-section.yaml", ": gpus", "did you mean 'gpu'?"),
        ("empty.yaml", ": (top level)", "the file is empty"),
        ("float-version.yaml", ": python.version", "expected a version in quotes, got the number 3.1"),
        ("bad-scenario.yaml", ": svd.scenario", "did you mean 'svd-xt-25f'?"),
        ("missing-parent.yaml", ": extends", "no profile named 'no-such-profile'"),
        ("cycle-a.yaml", ": extends", "makes a cycle"),
        ("no-description.yaml", ": description", "missing required key"),
        ("bad-spec.yaml", ": python.packages.torch", "expected a version requirement"),
    ],
)
def test_broken_profiles_name_file_key_and_expectation(file: str, where_suffix: str, message_part: str) -> None:
    path = FIXTURES / file
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    err = info.value
    assert err.where is not None
    assert err.where.endswith(where_suffix), err.where
    assert Path(err.where.split(": ")[0]).name in (file, "cycle-a.yaml", "cycle-b.yaml")
    assert message_part in err.message
    assert err.exit_code == 2
    assert str(err).startswith(err.where)


def test_wrong_type_reads_as_file_key_message() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(str(FIXTURES / "wrong-type.yaml"))
    assert str(info.value) == f"{FIXTURES / 'wrong-type.yaml'}: gpu.min_vram_gib: expected a number, got 'lots'"


def test_missing_file_and_unknown_name() -> None:
    with pytest.raises(ProfileError, match="profile file not found") as info:
        load_profile(str(FIXTURES / "nope.yaml"))
    assert info.value.where == str(FIXTURES / "nope.yaml")
    with pytest.raises(ProfileError, match="did you mean 'seed-2023'") as info2:
        load_profile("seed-2032")
    assert info2.value.hint is not None and "svd-host" in info2.value.hint


def test_search_path_env_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "svd-host.yaml").write_text('description: "site override"\n', encoding="utf-8")
    (tmp_path / "lab-extra.yaml").write_text('description: "site profile"\nextends: seed-2023\n', encoding="utf-8")
    monkeypatch.setenv(PROFILE_PATH_ENV, f"/does/not/exist:{tmp_path}")
    assert load_profile("svd-host").description == "site override"
    extra = load_profile("lab-extra")
    assert extra.os.releases == ("20.04",)  # the parent came from the repo's profiles/
    assert {p.name for p in list_profiles()} >= {"lab-extra", *SHIPPED}
    assert next(p for p in list_profiles() if p.name == "svd-host").source == tmp_path / "svd-host.yaml"


@pytest.mark.parametrize(
    ("spec", "version", "inside"),
    [
        (">=2.6", "2.11.0", True),
        (">=2.6", "2.5.1", False),
        ("3.8", "3.8.10", True),
        ("3.8", "3.9.0", False),
        ("11.3", "11.3.109", True),
        (">=12,<13", "12.8", True),
        (">=12,<13", "13.0", False),
        ("*", "0.1", True),
        ("!=2.7", "2.7.1", False),
        ("<=1.13", "1.13.1", False),
    ],
)
def test_version_spec(spec: str, version: str, inside: bool) -> None:
    assert VersionSpec.parse(spec).contains(Version.parse(version)) is inside


def test_version_spec_bounds() -> None:
    assert VersionSpec.parse(">=2.6,<3").minimum == Version.parse("2.6")
    assert VersionSpec.parse("11.3").pinned == Version.parse("11.3")
    assert VersionSpec.parse("*").is_any and str(VersionSpec.parse("*")) == "any version"
    with pytest.raises(ValueError, match="not a version requirement"):
        VersionSpec.parse("latest")


# --- optional: checks whose "could not look" is a skip, not an unknown ------------------------------------


def _profile(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text('description: "test"\n' + text)
    return path


def test_optional_lists_check_ids(tmp_path: Path) -> None:
    profile = load_profile(str(_profile(tmp_path, "optional: [driver.secure-boot, python.package]\n")))
    assert profile.optional == ("driver.secure-boot", "python.package")
    assert profile.is_optional("python.package") and not profile.is_optional("gpu.count")
    assert load_profile(str(_profile(tmp_path, "optional: gpu.nvlink\n"))).optional == ("gpu.nvlink",)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_make_nothing_optional(name: str) -> None:
    # what the shipped profiles require, they require: a check that could not look fails them
    assert load_profile(name).optional == ()


@pytest.mark.parametrize(
    ("text", "where", "message_part"),
    [
        (
            "optional: [python.verison]\n",
            "optional[0]",
            "unknown check id 'python.verison' (did you mean 'python.version'?)",
        ),
        ("optional: [gpu.count, nope]\n", "optional[1]", "unknown check id 'nope'"),
        ("optional: {gpu.count: true}\n", "optional", "expected a list of text values"),
        ("optional: [3]\n", "optional[0]", "unknown check id '3'"),
    ],
)
def test_optional_names_only_known_check_ids(tmp_path: Path, text: str, where: str, message_part: str) -> None:
    path = _profile(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert info.value.where == f"{path}: {where}"
    assert message_part in info.value.message
    if "unknown check id" in message_part:
        assert info.value.hint is not None and "gpu.count" in info.value.hint


def test_optional_is_inherited_and_a_child_can_replace_or_clear_it(tmp_path: Path) -> None:
    _profile(tmp_path, "optional: [driver.secure-boot]\ngpu:\n  min_count: 1\n", "base.yaml")
    inherits = load_profile(str(_profile(tmp_path, "extends: base\n", "inherits.yaml")))
    replaces = load_profile(str(_profile(tmp_path, "extends: base\noptional: [driver.nouveau]\n", "replaces.yaml")))
    clears = load_profile(str(_profile(tmp_path, "extends: base\noptional: null\n", "clears.yaml")))
    assert inherits.optional == ("driver.secure-boot",) and inherits.gpu.min_count == 1
    assert replaces.optional == ("driver.nouveau",)
    assert clears.optional == ()


# --- health: (issue 19) -----------------------------------------------------------------------------

def test_shipped_default_profile_judges_health() -> None:
    health = load_profile("svd-host").health
    assert (health.memory, health.pcie, health.nvlink, health.xid, health.thermal, health.fabric_manager) == \
        ("fail", "warn", "fail", "fail", "warn", "fail")
    assert health.corrected_ecc_warn_at == 1 and health.max_retired_pages == 60 and not health.require_kernel_log
    hgx = load_profile("h100-sxm-x8-nvlink").health
    assert hgx.pcie == "fail" and hgx.require_kernel_log and hgx.memory == "fail"  # merged from svd-host
    assert not load_profile("ci-cpu").health.judged


def test_health_off_as_bare_yaml_off(tmp_path: Path) -> None:
    # YAML 1.1 reads a bare `off` as false: it still means off
    profile = load_profile(str(_profile(tmp_path, "health:\n  memory: off\n  pcie: 'off'\n  xid: warn\n")))
    assert (profile.health.memory, profile.health.pcie, profile.health.xid) == (None, None, "warn")


@pytest.mark.parametrize(("text", "where", "message_part"), [
    ("health:\n  memory: fial\n", "health.memory", "expected fail, warn or off, got 'fial' (did you mean 'fail'?)"),
    ("health:\n  max_retired_pages: 65\n", "health.max_retired_pages", "expected at most 64, got 65"),
    ("health:\n  corrected_ecc_warn_at: -1\n", "health.corrected_ecc_warn_at", "expected a whole number"),
    ("health:\n  ecc: fail\n", "health.ecc", "unknown key 'ecc'"),
    ("health:\n  require_kernel_log: yes please\n", "health.require_kernel_log", "expected true or false"),
])
def test_health_section_errors_name_the_key(tmp_path: Path, text: str, where: str, message_part: str) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(str(_profile(tmp_path, text)))
    assert info.value.where.endswith(f": {where}") and message_part in str(info.value)


def test_health_check_ids_are_valid_optional_entries(tmp_path: Path) -> None:
    profile = load_profile(str(_profile(tmp_path, "optional: [health.xid, health.fabric-manager]\n")))
    assert profile.is_optional("health.xid")
