#!/usr/bin/env python3
"""Writes the committed seed corpora under Fuzz/Corpus/<Target>/ (run from anywhere; deterministic).

Each seed is a small valid file of the format, so that libFuzzer starts from inputs that get past
the magic numbers and headers. The PNG seeds are copies of the smallest Pillow-made fixtures.
"""
import gzip, json, os, shutil, struct

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "Corpus")


def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data)


def safetensors(entries, metadata=None):
    header, blob = {}, b""
    for name, dtype, shape, payload in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(payload)]}
        blob += payload
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


put("FuzzSafeTensors", "f32", safetensors([("w", "F32", [2, 2], struct.pack("<4f", 1, -2, 3.5, 0))]))
put("FuzzSafeTensors", "mixed", safetensors([
    ("a", "F16", [3], struct.pack("<3e", 1, -0.5, 2)),
    ("b", "BF16", [1, 2], b"\x80\x3f\x00\xc0"),
    ("c", "I64", [2], struct.pack("<2q", 7, -1)),
    ("d", "U8", [4], bytes([0, 1, 2, 255])),
    ("e", "F64", [], struct.pack("<d", 3.25)),
], {"format": "swift-cnn checkpoint 1", "epoch": "1"}))
put("FuzzSafeTensors", "empty", safetensors([]))

images = struct.pack(">IIII", 0x803, 2, 3, 3) + bytes(range(18))
labels = struct.pack(">II", 0x801, 5) + bytes([0, 1, 9, 3, 4])
put("FuzzIDX", "images", images)
put("FuzzIDX", "labels", labels)
put("FuzzIDX", "images.gz", gzip.compress(images, mtime=0))
put("FuzzIDX", "labels.gz", gzip.compress(labels, mtime=0))

record = 1 + 3 * 32 * 32
put("FuzzCIFAR10", "one", bytes([3]) + bytes((i * 7) % 256 for i in range(record - 1)))
put("FuzzCIFAR10", "two", bytes([0]) + bytes(record - 1) + bytes([9]) + bytes([255]) * (record - 1))

fixtures = os.path.join(here, "..", "Tests", "CNNTests", "Fixtures", "png")
for name in ["gray8-adam7-1x1", "rgba16-adam7-3x2", "gray16-mixed", "palette8-trns", "gray1-adam7", "rgb8-filter-paeth"]:
    os.makedirs(os.path.join(root, "FuzzPNG"), exist_ok=True)
    shutil.copyfile(os.path.join(fixtures, name + ".png"), os.path.join(root, "FuzzPNG", name))

put("FuzzPNM", "p5", b"P5\n# comment\n3 2\n255\n" + bytes([0, 50, 100, 150, 200, 250]))
put("FuzzPNM", "p6", b"P6 2 1 255\n" + bytes([255, 0, 0, 0, 255, 0]))
put("FuzzPNM", "p2", b"P2\n2 2\n15\n0 5\n10 15\n")
put("FuzzPNM", "p3", b"P3\n1 1\n255\n1 2 3\n")
put("FuzzPNM", "p5-16bit", b"P5\n2 1\n65535\n" + bytes([0, 1, 255, 255]))


def geometry(**kw):
    g = dict(batch=1, inputChannels=3, height=8, width=8, outputChannels=4, kernelHeight=3, kernelWidth=3,
             strideHeight=1, strideWidth=1, paddingHeight=1, paddingWidth=1, dilationHeight=1, dilationWidth=1, groups=1)
    g.update(kw)
    return g


table = {"version": 1, "entries": [
    {"geometry": geometry(), "algorithm": "winograd2x2", "milliseconds": 0.05, "isa": "avx2", "threads": 2},
    {"geometry": geometry(kernelHeight=1, kernelWidth=1, paddingHeight=0, paddingWidth=0), "algorithm": "gemm1x1",
     "milliseconds": 0.01, "isa": "portable", "threads": 1},
    {"geometry": geometry(strideHeight=2, strideWidth=2, groups=1), "algorithm": "direct", "milliseconds": 0.2,
     "isa": "avx512", "threads": 16},
]}
put("FuzzAutotune", "table", json.dumps(table, indent=2, sort_keys=True).encode())
put("FuzzAutotune", "empty", b'{"entries":[],"version":1}')
