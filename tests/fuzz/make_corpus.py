#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: a few small valid and near-valid files.

    python3 tests/fuzz/make_corpus.py      (from anywhere; rewrites tests/fuzz/corpus/)
"""
import gzip
import json
import pathlib
import shutil
import struct

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx_seeds():
    seeds = {
        "ubyte-1d.idx": idx(0x08, [4], bytes([0, 1, 128, 255])),
        "ubyte-3d.idx": idx(0x08, [2, 2, 3], bytes(range(12))),
        "sbyte.idx": idx(0x09, [3], bytes([0x80, 0xFF, 0x7F])),
        "int16.idx": idx(0x0B, [2], struct.pack(">hh", -2, 300)),
        "int32.idx": idx(0x0C, [2], struct.pack(">ii", -70000, 2**31 - 1)),
        "float32.idx": idx(0x0D, [1, 2], struct.pack(">ff", 1.5, float("-inf"))),
        "float64.idx": idx(0x0E, [2], struct.pack(">dd", 0.1, float("nan"))),
        "zero-dim.idx": idx(0x08, [0, 5], b""),
        "eight-dims.idx": idx(0x08, [1] * 8, b"\x07"),
        "images.idx.gz": gz(idx(0x08, [2, 2, 2], bytes(range(8)))),
        "labels.idx.gz": gz(idx(0x08, [5], bytes([3, 1, 4, 1, 5]))),
        "float64.idx.gz": gz(idx(0x0E, [1], struct.pack(">d", -2.25))),
        "two-members.idx.gz": gz(idx(0x08, [4], b"\x01\x02")) + gz(b"\x03\x04"),
        # Near-valid: each breaks one rule.
        "truncated.idx": idx(0x08, [4], b"\x01\x02"),
        "trailing.idx": idx(0x08, [2], b"\x01\x02\x03"),
        "nine-dims.idx": idx(0x08, [1] * 9, b"\x07"),
        "bad-type.idx": idx(0x0A, [1], b"\x00"),
        "liar.idx": idx(0x08, [65536, 65536], b"\x00" * 8),
        "liar.idx.gz": gz(idx(0x0C, [100000000], b"\x00" * 8)),
        "truncated.idx.gz": gz(idx(0x08, [3], b"\x01\x02\x03"))[:-5],
    }
    return seeds


def safetensors(tensors, metadata=None, raw_header=None, header_len=None, pad=True):
    """tensors: list of (name, dtype, shape, bytes); packed in order."""
    header, buffer = {}, b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(buffer), len(buffer) + len(data)]}
        buffer += data
    if metadata is not None:
        header["__metadata__"] = metadata
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))
    text = text.encode()
    if pad:
        text += b" " * (-len(text) % 8)
    length = len(text) if header_len is None else header_len
    return struct.pack("<Q", length) + text + buffer


def f64(*values):
    return struct.pack("<%dd" % len(values), *values)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def safetensors_seeds():
    model = [("b", "F64", [3], f64(0.5, -1, 2)),
             ("s", "F64", [], f64(7)),
             ("w", "F64", [2, 3], f64(1, 2, 3, 4, 5, 6))]
    seeds = {
        # Exactly the fuzz target's parameters (b [3], s [], w [2, 3]): load_into succeeds.
        "model.safetensors": safetensors(model, {"format": "pt", "epoch": "3"}),
        "model-f32.safetensors": safetensors(
            [("b", "F32", [3], f32(1, 2, 3)), ("s", "F32", [], f32(-0.0)),
             ("w", "F32", [2, 3], f32(*range(6)))]),
        "empty.safetensors": safetensors([]),
        "zero-size.safetensors": safetensors([("z", "F64", [0, 4], b""), ("b", "F64", [1], f64(1))]),
        "unpadded.safetensors": safetensors(model[:1], pad=False),
        # Near-valid: each breaks one rule.
        "wrong-shape.safetensors": safetensors(
            [("b", "F64", [3], f64(1, 2, 3)), ("s", "F64", [], f64(7)),
             ("w", "F64", [3, 2], f64(*range(6)))]),
        "extra.safetensors": safetensors(model + [("x", "F64", [1], f64(9))]),
        "f16.safetensors": safetensors([("b", "F16", [3], b"\x00" * 6)]),
        "overlap.safetensors": safetensors(
            [], raw_header='{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},'
                           '"b":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}') + b"\x00" * 16,
        "gap.safetensors": safetensors(
            [], raw_header='{"a":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}') + b"\x00" * 16,
        "header-too-long.safetensors": safetensors(model[:1], header_len=4096),
        "bad-json.safetensors": safetensors([], raw_header='{"b":{"dtype":"F64","shape":[3],'),
        "nested-shape.safetensors": safetensors(
            [], raw_header='{"b":{"dtype":"F64","shape":[[[1]]],"data_offsets":[0,8]}}') + f64(1),
        "bad-metadata.safetensors": safetensors([], {"epoch": 3}),
    }
    return seeds


def main():
    for name, seeds in (("idx", idx_seeds()), ("safetensors", safetensors_seeds())):
        directory = CORPUS / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for file_name, data in seeds.items():
            (directory / file_name).write_bytes(data)
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"wrote {CORPUS} ({total} bytes)")


if __name__ == "__main__":
    main()
