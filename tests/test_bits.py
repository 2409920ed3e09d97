import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqcodec.bits import (
    IndexFileError,
    bits_per_label,
    bits_to_indices,
    bits_to_labels,
    indices_to_bits,
    labels_to_bits,
    parse_index_file,
    read_index_file,
    write_index_file,
)


@pytest.mark.parametrize("K", [2, 3, 64, 100, 256, 1000, 1024, 4096])
def test_pack_unpack_every_K(K):
    rng = np.random.default_rng(K)
    idx = rng.integers(0, K, size=(7, 9))
    bits = indices_to_bits(idx, K)
    b = bits_per_label(K)
    assert bits.dtype == np.uint8 and bits.shape == (idx.size * b,) and set(np.unique(bits)) <= {0, 1}
    assert np.array_equal(bits_to_indices(bits, K).reshape(idx.shape), idx)


def test_msb_first():
    assert labels_to_bits(np.array([1, 6]), 3).tolist() == [0, 0, 1, 1, 1, 0]
    assert bits_to_labels(np.array([1, 0, 0, 0, 1, 1]), 3).tolist() == [4, 3]


def test_bits_per_label():
    assert [bits_per_label(k) for k in (2, 3, 4, 5, 256, 257, 1024)] == [1, 2, 2, 3, 8, 9, 10]


def test_unused_label_is_detected():
    # K = 3 uses labels 0, 1, 2 of 2 bits; label 3 is no index
    assert bits_to_indices(np.array([1, 1, 0, 1], np.uint8), 3).tolist() == [-1, 1]


def test_assignment_is_applied():
    K = 4
    a = np.array([3, 2, 0, 1])
    idx = np.array([0, 1, 2, 3])
    bits = indices_to_bits(idx, K, a)
    assert bits_to_labels(bits, 2).tolist() == [3, 2, 0, 1]
    assert bits_to_indices(bits, K, a).tolist() == [0, 1, 2, 3]


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5000), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2 ** 31))
def test_roundtrip_property(K, h, w, seed):
    idx = np.random.default_rng(seed).integers(0, K, size=(h, w))
    assert np.array_equal(bits_to_indices(indices_to_bits(idx, K), K).reshape(h, w), idx)


def test_index_file_roundtrip(tmp_path):
    idx = np.random.default_rng(0).integers(0, 1000, size=(5, 7))
    write_index_file(tmp_path / "a.vqc", idx, model="m", K=1000, height=17, width=26)
    out, header = read_index_file(tmp_path / "a.vqc")
    assert np.array_equal(out, idx)
    assert header == {"model": "m", "K": 1000, "height": 17, "width": 26, "grid": [5, 7], "stages": 1,
                      "fingerprint": None, "coding": "fixed"}


def test_index_file_with_stages_and_fingerprint(tmp_path):
    idx = np.random.default_rng(1).integers(0, 256, size=(3, 4, 6))
    write_index_file(tmp_path / "s.vqc", idx, model="m", K=256, height=30, width=45, fingerprint="ab" * 8)
    out, header = read_index_file(tmp_path / "s.vqc")
    assert np.array_equal(out, idx) and header["grid"] == [4, 6] and header["stages"] == 3
    assert header["fingerprint"] == "ab" * 8


def test_index_file_errors(tmp_path):
    idx = np.zeros((2, 2), np.int64)
    write_index_file(tmp_path / "a.vqc", idx, model="m", K=256, height=8, width=8)
    data = (tmp_path / "a.vqc").read_bytes()
    for bad in (b"", b"XXXX" + data[4:], data[:-1], data[:10], data + b"\0"):
        with pytest.raises(IndexFileError):
            parse_index_file(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_index_file_parser_fuzz(data):
    try:
        parse_index_file(b"VQC1" + data)
    except IndexFileError:
        pass


def test_index_files_carry_a_crc_and_old_files_still_read(tmp_path):
    import struct

    from vqcodec.bits import VQC_MAGIC_V1, index_file_bytes

    idx = np.random.default_rng(2).integers(0, 256, size=(12, 16))
    data = index_file_bytes(idx, model="m", K=256, height=48, width=64)
    assert parse_index_file(data)[1]["height"] == 48
    flipped = bytearray(data)
    flipped[-10] ^= 0x01  # one payload bit
    edited = data.replace(b'"height": 48', b'"height": 45')  # still a valid header for this grid
    for bad in (bytes(flipped), edited):
        with pytest.raises(IndexFileError, match="CRC-32 does not match"):
            parse_index_file(bad)
    # a version-1 file (no CRC) is read as before
    hlen = struct.unpack("<I", data[4:8])[0]
    v1 = VQC_MAGIC_V1 + data[4:-4]
    out, header = parse_index_file(v1)
    assert np.array_equal(out, idx) and header["height"] == 48 and hlen > 0
