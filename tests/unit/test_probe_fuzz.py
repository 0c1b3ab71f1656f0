"""Every parser survives any text: truncated, binary, empty, or a real output cut anywhere."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svdops.host.probe import cuda, driver, gpu, python_env, storage, system, topology
from tests.support.paths import recorded_outputs

PARSERS = {
    "nvidia-smi-q.xml": gpu.parse_nvidia_smi_xml,
    "nvidia-smi-query-gpu.csv": gpu.parse_query_gpu_csv,
    "nvidia-smi-topo-m.txt": topology.parse_topo_matrix,
    "proc-driver-nvidia-version.txt": driver.parse_proc_driver_version,
    "nvidia-smi-version.txt": driver.parse_smi_version,
    "nvidia-smi.txt": driver.parse_smi_header,
    "proc-modules.txt": driver.parse_proc_modules,
    "mokutil-sb-state.txt": driver.parse_mokutil_sb_state,
    "systemctl-persistenced.txt": driver.parse_systemctl_is_active,
    "nvcc-version.txt": cuda.parse_nvcc_version,
    "ldconfig-cuda.txt": cuda.parse_ldconfig,
    "dpkg-nvidia.txt": cuda.parse_dpkg_query,
    "os-release.txt": system.parse_os_release,
    "uname-a.txt": system.parse_uname,
    "hostname.txt": system.parse_hostname,
    "lscpu.json": system.parse_lscpu_json,
    "meminfo.txt": system.parse_meminfo,
    "lsblk.json": storage.parse_lsblk_json,
    "mdstat.txt": storage.parse_mdstat,
    "df.txt": storage.parse_df,
    "mounts.txt": storage.parse_proc_mounts,
    "pip-list.txt": python_env.parse_pip_freeze,
    "torch-versions.json": python_env.parse_torch_versions_json,
    "torch-env.txt": python_env.parse_collect_env,
    "python-version.txt": python_env.parse_python_version,
    "conda-version.txt": python_env.parse_conda_version,
    "conda-envs.json": python_env.parse_conda_envs_json,
    "which.txt": python_env.parse_which,
}


@pytest.mark.parametrize("key", sorted(PARSERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_parsers_never_raise_on_random_text(key, text):
    PARSERS[key](text)


@pytest.mark.parametrize("key", sorted(PARSERS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_parsers_never_raise_on_real_output_cut_or_corrupted(key, data):
    samples = recorded_outputs(key)
    text = data.draw(st.sampled_from(samples))
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.text(max_size=20))
    PARSERS[key](text[:cut] + junk + text[cut + len(junk):])


@pytest.mark.parametrize("key", sorted(PARSERS))
@pytest.mark.parametrize("text", ["", "\x00" * 64, "\ufffd\ufffd{<[", "null", "[]", "{}", '{"a": [', "\n\n\t\t"])
def test_parsers_on_fixed_garbage(key, text):
    PARSERS[key](text)


@pytest.mark.parametrize("key", sorted(PARSERS))
def test_digits_that_int_rejects(key):
    # '²' passes str.isdigit() but int('²') raises: a classic crash in hand-written parsers
    PARSERS[key]("² ² ²\n0, ²\n²\t²\n" + "md0 : active raid1 sda[²]\n      ² blocks [²/²] [U]\n")
    PARSERS[key]("Filesystem Type 1024-blocks Used Available Capacity Mounted on\n/dev/x ext4 ² 1 ² 1% /\n")


@pytest.mark.parametrize("key", sorted(PARSERS))
def test_numbers_too_long_for_int(key):
    # int() raises on strings over 4300 digits; such output must read as garbage, not crash
    huge = "9" * 5000
    for text in (huge, f"{huge}.{huge}", f"MemTotal: {huge} kB", f"release {huge}.0", f"GPU{huge}\tGPU0\nGPU0\t X \n",
                 f'{{"torch": "{huge}", "cudnn": {huge}, "nccl": {huge}}}', f"torch=={huge}\n"):
        PARSERS[key](text)
