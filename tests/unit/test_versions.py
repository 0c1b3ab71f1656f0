from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from svdops.versions import Version, cuda_from_int, cudnn_from_int, parse_version


@pytest.mark.parametrize(
    "text, parts, label",
    [
        ("580.159.04", (580, 159, 4), ""),
        ("Cuda compilation tools, release 13.0, V13.0.88", (13, 0), ""),
        ("2.11.0+cu130", (2, 11, 0), "cu130"),
        ("1.10.0+cu113", (1, 10, 0), "cu113"),
        ("9.19.0.56", (9, 19, 0, 56), ""),
        ("V13.0.88", (13, 0, 88), ""),
        ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build", (580, 159, 4), ""),
    ],
)
def test_parse(text: str, parts: tuple[int, ...], label: str) -> None:
    v = parse_version(text)
    assert v is not None
    assert v.parts == parts
    assert v.label == label


def test_numeric_not_textual_ordering() -> None:
    assert Version.parse("580.9") < Version.parse("580.10")
    assert Version.parse("535.230.02") < Version.parse("580.65.06")
    assert Version.parse("13.0") == Version.parse("13.0.0")
    assert hash(Version.parse("13.0")) == hash(Version.parse("13"))
    assert Version.parse("2.11.0+cu130") == Version.parse("2.11.0")
    assert Version.parse("12.8.93").truncate(2) == Version.parse("12.8")


def test_no_version() -> None:
    assert parse_version("") is None
    assert parse_version(None) is None
    assert parse_version("N/A") is None
    assert parse_version("1" * 5000) is None
    with pytest.raises(ValueError, match="not a version"):
        Version.parse("garbage")


def test_integer_encodings() -> None:
    assert str(cuda_from_int(13000)) == "13.0"
    assert str(cuda_from_int(12080)) == "12.8"
    assert str(cudnn_from_int(91900)) == "9.19.0"
    assert str(cudnn_from_int(8902)) == "8.9.2"


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=5))
def test_round_trip_and_order(parts: list[int]) -> None:
    text = ".".join(map(str, parts))
    v = Version.parse(text)
    assert str(v) == text
    assert Version.parse(str(v)) == v
    bigger = Version.parse(".".join(map(str, [*parts[:-1], parts[-1] + 1])))
    assert v < bigger
