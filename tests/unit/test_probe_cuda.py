"""nvcc, ldconfig and dpkg-query parsing."""

from __future__ import annotations

from svdops.host.probe.cuda import (
    cudnn_from_dpkg,
    driver_from_dpkg,
    library_version_from_paths,
    nccl_from_dpkg,
    parse_dpkg_query,
    parse_ldconfig,
    parse_nvcc_version,
    toolkit_from_dpkg,
)
from svdops.versions import Version

H100 = "h100-sxm-ubuntu2404"

DPKG = (
    "libcudnn9-cuda-13\t9.14.0.64-1\tii \n"
    "libcudnn9-dev-cuda-13\t9.14.0.64-1\tii \n"
    "libcudnn8\t8.9.7.29-1+cuda12.2\trc \n"
    "libnccl2\t2.28.9-1+cuda13.0\tii \n"
    "cuda-toolkit-13-0\t13.0.2-1\tii \n"
    "nvidia-driver-580-open\t580.95.05-0ubuntu0.24.04.2\thi \n"
)


def test_recorded_nvcc(host_text):
    assert parse_nvcc_version(host_text(H100, "nvcc-version.txt")) == Version.parse("13.0")
    assert parse_nvcc_version("bash: nvcc: command not found") is None


def test_recorded_ldconfig_has_sonames_and_major_versions(host_text):
    libs = parse_ldconfig(host_text(H100, "ldconfig-cuda.txt"))
    assert "libcudnn.so.9" in libs.sonames
    assert "libnccl.so.2" in libs.sonames
    assert "libcudart.so.13" in libs.sonames
    assert libs.cudnn == Version.parse("9")
    assert libs.nccl == Version.parse("2")
    assert libs.cudnn.parts == (9,)


def test_ldconfig_ignores_unrelated_libraries_and_prefers_full_versions():
    text = (
        "1523 libs found in cache `/etc/ld.so.cache'\n"
        "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n"
        "\tlibcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8.9.7\n"
        "\tlibnccl.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnccl.so.2.21.5\n"
    )
    libs = parse_ldconfig(text)
    assert libs.sonames == ("libcudnn.so.8", "libnccl.so.2")
    assert libs.cudnn == Version.parse("8.9.7")
    assert libs.cudnn.parts == (8, 9, 7)
    assert libs.nccl == Version.parse("2.21.5")


def test_library_version_from_collect_env_paths():
    paths = ["/usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0", "/usr/lib/x86_64-linux-gnu/libcudnn_adv.so.9.14.0"]
    assert library_version_from_paths(paths, "libcudnn") == Version.parse("9.14.0")
    assert library_version_from_paths(["/x/libcudnn_frontend.a"], "libcudnn") is None


def test_dpkg_versions_only_count_installed_packages():
    packages = parse_dpkg_query(DPKG)
    assert packages["libcudnn8"].installed is False  # removed, config files remain
    assert packages["nvidia-driver-580-open"].installed is True  # held
    assert cudnn_from_dpkg(packages) == Version.parse("9.14.0")
    assert cudnn_from_dpkg(packages).parts == (9, 14, 0)
    assert nccl_from_dpkg(packages) == Version.parse("2.28.9")
    assert toolkit_from_dpkg(packages) == Version.parse("13.0")
    assert driver_from_dpkg(packages) == Version.parse("580.95.05")


def test_dpkg_garbage():
    packages = parse_dpkg_query("dpkg-query: no packages found matching libnccl*\n\x00\t\n")
    assert cudnn_from_dpkg(packages) is None
    assert driver_from_dpkg({}) is None
