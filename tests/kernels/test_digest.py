"""Digests taken while bytes pass: the writer and reader wrappers agree with xxh3-128 of the file."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import xxhash

from nbscale.kernels.digest import DIGEST, DigestReader, DigestWriter, file_digest


def xxh3(data: bytes) -> str:
    return f"{DIGEST}:{xxhash.xxh3_128(data).hexdigest()}"


def test_writer_hashes_what_it_writes_in_one_pass():
    target = io.BytesIO()
    sink = DigestWriter(target)
    np.save(sink, np.arange(100_000, dtype=np.float32).reshape(100, 1000))  # multi-byte views
    sink.write(memoryview(np.arange(10, dtype=np.int64)))
    assert sink.in_order and sink.size == len(target.getvalue())
    assert sink.digest() == xxh3(target.getvalue())


def test_writer_that_seeks_asks_for_a_digest_of_the_file():
    target = io.BytesIO()
    sink = DigestWriter(target)
    sink.write(b"header-to-fix body")
    sink.seek(0)
    sink.write(b"HEADER")
    assert not sink.in_order
    assert file_digest(target) == (xxh3(b"HEADER-to-fix body"), 18)


def test_reader_hashes_in_order_reads_and_rereads_after_numpy_seeks_back():
    data = io.BytesIO()
    np.save(data, np.arange(50_000))
    raw = data.getvalue()
    source = DigestReader(io.BytesIO(raw))
    np.testing.assert_array_equal(np.load(source), np.arange(50_000))  # reads the magic, seeks back
    assert not source.jumped and source.hashed == len(raw)  # nothing left to read again
    assert source.digest() == xxh3(raw)


def test_reader_that_jumps_ahead_hashes_the_file_again():
    data = io.BytesIO()
    pd.DataFrame({"x": range(1000)}).to_parquet(data)
    raw = data.getvalue()
    source = DigestReader(io.BytesIO(raw))
    source.seek(len(raw) - 8)  # a footer first, as Parquet readers do
    source.read(8)
    assert source.jumped
    assert source.digest() == xxh3(raw) and source.hashed == len(raw)


def test_reader_finishes_a_partial_read():
    raw = bytes(range(256)) * 1000
    source = DigestReader(io.BytesIO(raw))
    buffer = bytearray(1000)
    assert source.readinto(buffer) == 1000 and bytes(buffer) == raw[:1000]
    assert source.digest() == xxh3(raw)
