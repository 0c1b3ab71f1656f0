#!/usr/bin/env bash
# Create .venv with svdops, its [bench] extra and [dev] (the test tools plus the [fleet], [provision] and
# [report] extras the tests exercise: fabric, ansible-core, ansible-runner, pandas). Idempotent.
# torch comes first, pinned to the CPU build this machine keeps on disk; on a GPU host install the
# CUDA build you want before running this (the [bench] range accepts it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==${SVDOPS_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[bench,dev]"
# The SSH fleet tests and benchmark start real sshd instances on loopback (tests/integration/sshd_fleet.py).
# Install Debian's openssh-server only as root and only when sshd is missing. The tests never use the
# package's own service (under systemd apt starts it on port 22; in a container nothing starts it).
if [ "$(id -u)" = 0 ] && [ ! -x /usr/sbin/sshd ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
fi
# The report's browser test opens the HTML in Debian's headless Chromium (tests/integration/test_report_browser.py).
# Installed only as root and only when /usr/bin/chromium is missing; Playwright never downloads a browser here.
if [ "$(id -u)" = 0 ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# The provision VM suite (tests/integration/test_provision_vm.py, marker `vm`) boots a Debian guest under
# qemu with emulated NVMe disks and builds its root filesystem with debootstrap. Root only, only when missing.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    && { [ ! -x /usr/bin/qemu-system-x86_64 ] || [ ! -x /usr/bin/qemu-img ] || [ ! -x /usr/sbin/debootstrap ]; }; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        qemu-system-x86 qemu-utils debootstrap >/dev/null
fi
