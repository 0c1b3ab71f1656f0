"""What the suites share: fixture paths (`paths`) and the one NVML fake (`fake_nvml`)."""
