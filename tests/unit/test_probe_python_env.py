"""pip freeze, torch's version info, collect_env, conda and which."""

from __future__ import annotations

import json

import pytest

from svdops.host.probe.python_env import (
    bundled_library,
    cuda_from_wheel_label,
    cudnn_from_any,
    nccl_from_any,
    normalise_name,
    parse_collect_env,
    parse_conda_envs_json,
    parse_conda_version,
    parse_pip_freeze,
    parse_python_version,
    parse_torch_versions_json,
    parse_which,
)
from svdops.versions import Version

H100 = "h100-sxm-ubuntu2404"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Jinja2", "jinja2"), ("typing_extensions", "typing-extensions"), ("zope.interface", "zope-interface"),
     ("A__b-.c", "a-b-c")],
)
def test_pep503_names(name, expected):
    assert normalise_name(name) == expected


def test_recorded_pip_list(host_text):
    packages = parse_pip_freeze(host_text(H100, "pip-list.txt"))
    assert packages["torch"] == "2.11.0"
    assert packages["transformers"] == "5.17.0"
    assert packages["huggingface-hub"] == "1.33.0"
    assert packages["jinja2"] == "3.1.6"
    assert "diffusers" not in packages
    assert bundled_library(packages, "cudnn") == Version.parse("9.19.0")
    assert bundled_library(packages, "nccl") == Version.parse("2.28.9")


def test_pip_freeze_skips_lines_without_a_version():
    text = "-e git+https://x/y.git#egg=y\nfoo @ file:///tmp/foo.whl\nbar==1.0\n# comment\n\x00\n"
    assert parse_pip_freeze(text) == {"bar": "1.0"}


@pytest.mark.parametrize(
    ("label", "expected"), [("cu130", "13.0"), ("cu128", "12.8"), ("cu118", "11.8"), ("cu113", "11.3"), ("cu92", "9.2")]
)
def test_cuda_from_wheel_label(label, expected):
    assert cuda_from_wheel_label(label) == Version.parse(expected)


@pytest.mark.parametrize("label", ["cpu", "rocm6.2", "", "cu", "cuda"])
def test_non_cuda_labels(label):
    assert cuda_from_wheel_label(label) is None


def test_recorded_torch_versions(host_text):
    build = parse_torch_versions_json(host_text(H100, "torch-versions.json"))
    assert build is not None
    assert build.version == Version.parse("2.11.0")
    assert build.version.label == "cu130"
    assert build.cuda == Version.parse("13.0")
    assert build.cudnn == Version.parse("9.19")
    assert build.nccl == Version.parse("2.28.9")
    assert build.arch_list == ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")
    assert not build.cpu_only


def test_own_torch_versions_format():
    text = json.dumps({"torch": "2.11.0+cpu", "cuda": None, "hip": None, "git_version": "abc"})
    build = parse_torch_versions_json(text)
    assert build is not None
    assert build.cuda is None and build.cpu_only
    rocm = parse_torch_versions_json(json.dumps({"torch": "2.5.1+rocm6.2", "cuda": None, "hip": "6.2.41133"}))
    assert rocm is not None and rocm.hip == "6.2.41133" and not rocm.cpu_only
    assert parse_torch_versions_json(json.dumps({"torch": None})) is None


def test_version_encodings():
    assert nccl_from_any([2, 21, 5]) == Version.parse("2.21.5")
    assert nccl_from_any(22809) == Version.parse("2.28.9")
    assert nccl_from_any(2708) == Version.parse("2.7.8")
    assert nccl_from_any(True) is None
    assert cudnn_from_any(8902) == Version.parse("8.9.2")
    assert cudnn_from_any("91900") == Version.parse("9.19.0")
    assert cudnn_from_any(None) is None


def test_recorded_collect_env(host_text):
    env = parse_collect_env(host_text(H100, "torch-env.txt"))
    assert env is not None
    assert env.torch_version == Version.parse("2.11.0")
    assert env.torch_cuda == Version.parse("13.0")
    assert env.python_version == Version.parse("3.12.3")
    assert env.cudnn_paths[0] == "/usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0"
    assert len(env.cudnn_paths) == 8
    assert env.pip_packages["nvidia-cudnn-cu13"] == "9.19.0.56"
    assert parse_collect_env("nothing here") is None


def test_python_version_output():
    assert parse_python_version("3.12.3\n/opt/torch/.venv/bin/python3\n") == (
        Version.parse("3.12.3"), "/opt/torch/.venv/bin/python3",
    )
    assert parse_python_version("Traceback ...") == (None, None)


def test_conda():
    assert parse_conda_version("conda 24.7.1\n") == Version.parse("24.7.1")
    assert parse_conda_version("mamba 1.5.8\nconda 24.5.0\n") == Version.parse("1.5.8")
    assert parse_conda_version("2.0.5\n") == Version.parse("2.0.5")
    assert parse_conda_version("bash: conda: command not found") is None
    assert parse_conda_envs_json('{"envs": ["/opt/conda", "/opt/conda/envs/svd", 3]}') == (
        "/opt/conda", "/opt/conda/envs/svd",
    )
    assert parse_conda_envs_json("{") is None


def test_recorded_which(host_text):
    found = parse_which(host_text(H100, "which.txt"))
    assert found == {
        "nvidia-smi": "/usr/local/nvidia/bin/nvidia-smi",
        "nvcc": "/usr/local/cuda/bin/nvcc",
        "python3": "/opt/torch/.venv/bin/python3",
    }
