"""Driver versions, module flavour, mismatch, nouveau, Secure Boot, persistenced."""

from __future__ import annotations

import pytest

from svdops.host.probe.driver import (
    has_library_mismatch,
    nvml_library_version,
    parse_mokutil_sb_state,
    parse_proc_driver_version,
    parse_proc_modules,
    parse_smi_header,
    parse_smi_version,
    parse_systemctl_is_active,
)
from svdops.versions import Version

H100 = "h100-sxm-ubuntu2404"


def test_recorded_open_module(host_text):
    module = parse_proc_driver_version(host_text(H100, "proc-driver-nvidia-version.txt"))
    assert module is not None
    assert module.version == Version.parse("580.159.04")
    assert module.flavor == "open"


def test_proprietary_module():
    text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
    module = parse_proc_driver_version(text)
    assert module is not None
    assert (module.version, module.flavor) == (Version.parse("535.183.01"), "proprietary")


@pytest.mark.parametrize("text", ["", "GCC version: gcc 12", "\x00\xff", "NVRM version: garbage"])
def test_proc_version_garbage(text):
    assert parse_proc_driver_version(text) is None


def test_recorded_smi_version(host_text):
    versions = parse_smi_version(host_text(H100, "nvidia-smi-version.txt"))
    assert versions.driver == Version.parse("580.159.04")
    assert versions.nvml == "580.159"
    assert versions.cuda_driver_api == Version.parse("13.0")


def test_recorded_smi_header(host_text):
    versions = parse_smi_header(host_text(H100, "nvidia-smi.txt"))
    assert versions.driver == Version.parse("580.159.04")
    assert versions.cuda_driver_api == Version.parse("13.0")
    assert parse_smi_header("No devices were found") == type(versions)()


def test_mismatch_message():
    text = "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.95\n"
    assert has_library_mismatch("", text)
    assert nvml_library_version(text) == "580.95"
    assert not has_library_mismatch("all good")


def test_proc_modules_names():
    text = (
        "nouveau 3096576 1 - Live 0x0000000000000000\n"
        "mxm_wmi 12288 1 nouveau, Live 0x0000000000000000\n"
        "drm_ttm_helper 12288 1 nouveau, Live 0x0000000000000000\n"
    )
    assert parse_proc_modules(text) == {"nouveau", "mxm_wmi", "drm_ttm_helper"}
    assert parse_proc_modules("\x00\x01") == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SecureBoot enabled\n", True),
        ("SecureBoot disabled\nPlatform is in Setup Mode\n", False),
        ("This system doesn't support Secure Boot\n", False),
        ("EFI variables are not supported on this system\n", False),
        ("", None),
        ("mokutil: command crashed", None),
    ],
)
def test_mokutil(text, expected):
    assert parse_mokutil_sb_state(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"), [("active\n", True), ("inactive\n", False), ("failed\n", False), ("", None), ("?", None)]
)
def test_systemctl_is_active(text, expected):
    assert parse_systemctl_is_active(text) is expected
