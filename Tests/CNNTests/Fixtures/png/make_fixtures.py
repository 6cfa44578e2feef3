"""Generates the PNG decoder fixtures: small PNGs covering every color type, bit depth, filter type
and Adam7 interlacing, each with the expected 8-bit decoded samples.

The PNGs are written here with an encoder independent of the Swift one (forward filters, bit
packing and Adam7 pass extraction in Python), and every file is checked against Pillow's decoder
before it is kept. Run from this folder: `python3 make_fixtures.py` (needs Pillow).

Each case becomes NAME.png and NAME.raw (expected samples, interleaved, 8-bit); manifest.txt lists
`NAME width height channels`. 16-bit samples are expected as round(v * 255 / 65535), low bit
depths as v * 255 / (2^depth - 1), palette entries expanded to RGB (RGBA with tRNS).
"""
import random
import warnings
import struct
import zlib

from PIL import Image

SPP = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out, acc, nbits = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | s
        nbits += depth
        if nbits == 8:
            out.append(acc)
            acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp, choose):
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        f = choose(y)
        out.append(f)
        for x in range(len(row)):
            a = row[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            out.append((row[x] - pred) & 0xFF)
        prev = row
    return bytes(out)


def make_png(w, h, ctype, depth, pixels, choose, interlace=False, palette=None, trns=None, idat_split=0):
    spp = SPP[ctype]
    bpp = max(1, spp * depth // 8)
    data = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for (x0, y0, dx, dy) in passes:
        xs, ys = list(range(x0, w, dx)), list(range(y0, h, dy))
        if not xs or not ys:
            continue
        rows = [pack_row([s for x in xs for s in pixels[y][x]], depth) for y in ys]
        data += filter_rows(rows, bpp, choose)
    z = zlib.compress(data, 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    out += chunk(b"tEXt", b"Comment\x00fixture")  # an ancillary chunk the decoder must skip
    if palette:
        out += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if trns:
        out += chunk(b"tRNS", bytes(trns))
    parts = [z] if not idat_split else [z[i:i + idat_split] for i in range(0, len(z), idat_split)]
    for p in parts:
        out += chunk(b"IDAT", p)
    return out + chunk(b"IEND", b"")


def expected(pixels, ctype, depth, palette, trns):
    out = bytearray()
    for row in pixels:
        for px in row:
            if ctype == 3:
                out += bytes(palette[px[0]])
                if trns:
                    out.append(trns[px[0]] if px[0] < len(trns) else 255)
            elif depth == 16:
                out += bytes((s * 255 + 32767) // 65535 for s in px)
            elif depth < 8:
                out += bytes(s * 255 // ((1 << depth) - 1) for s in px)
            else:
                out += bytes(px)
    return bytes(out)


def check_with_pillow(path, w, h, ctype, depth, pixels, palette, trns):
    im = Image.open(path)
    im.load()
    assert im.size == (w, h), path
    if ctype == 3:
        got = list(im.convert("RGBA" if trns else "RGB").getdata())
        want = [tuple(palette[px[0]]) + ((trns[px[0]] if px[0] < len(trns) else 255,) if trns else ()) for row in pixels for px in row]
    else:
        got = list(im.getdata())
        got = [g if isinstance(g, tuple) else (g,) for g in got]
        if ctype == 4 and im.mode == "RGBA":  # Pillow widens 16-bit gray + alpha to RGBA
            got = [(g[0], g[3]) for g in got]
        want = []
        for row in pixels:
            for px in row:
                if depth == 16 and im.mode not in ("I", "I;16", "I;16B"):
                    want.append(tuple(s >> 8 for s in px))
                elif depth < 8 and ctype == 0:
                    want.append(tuple(s * 255 // ((1 << depth) - 1) for s in px))
                else:
                    want.append(tuple(px))
    assert got == want, f"{path}: Pillow disagrees ({im.mode}): {got[:6]} vs {want[:6]}"


def main():
    warnings.simplefilter("ignore", DeprecationWarning)  # Image.getdata, still correct
    rng = random.Random(2024)
    manifest = []

    def sample_image(w, h, ctype, depth, palette_size=None):
        maxv = (1 << depth) - 1
        spp = SPP[ctype]
        rows = []
        for y in range(h):
            row = []
            for x in range(w):
                if ctype == 3:
                    row.append(((x * 3 + y * 5 + rng.randrange(2)) % palette_size,))
                else:
                    # A gradient plus noise, so every filter has real work to do.
                    row.append(tuple(min(maxv, (x * 37 + y * 53 + c * 101) * maxv // 400 + rng.randrange(maxv // 16 + 1)) for c in range(spp)))
            rows.append(row)
        return rows

    def case(name, w, h, ctype, depth, choose, interlace=False, trns_len=0, idat_split=0):
        palette = None
        trns = None
        if ctype == 3:
            n = min(1 << depth, 13 if depth >= 4 else 1 << depth)
            palette = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]
            trns = [rng.randrange(256) for _ in range(trns_len)] if trns_len else None
            pixels = sample_image(w, h, ctype, depth, n)
        else:
            pixels = sample_image(w, h, ctype, depth)
        data = make_png(w, h, ctype, depth, pixels, choose, interlace, palette, trns, idat_split)
        with open(name + ".png", "wb") as f:
            f.write(data)
        check_with_pillow(name + ".png", w, h, ctype, depth, pixels, palette, trns)
        exp = expected(pixels, ctype, depth, palette, trns)
        channels = 4 if (ctype == 3 and trns) else (3 if ctype == 3 else SPP[ctype])
        assert len(exp) == w * h * channels
        with open(name + ".raw", "wb") as f:
            f.write(exp)
        manifest.append(f"{name} {w} {h} {channels}")

    for f, fname in enumerate(["none", "sub", "up", "average", "paeth"]):
        case(f"gray8-filter-{fname}", 9, 7, 0, 8, lambda y, f=f: f)
        case(f"rgb8-filter-{fname}", 6, 5, 2, 8, lambda y, f=f: f)
    mixed = lambda y: y % 5
    case("gray8-mixed-split-idat", 17, 11, 0, 8, mixed, idat_split=16)
    case("ga8-mixed", 7, 6, 4, 8, mixed)
    case("rgba8-mixed", 7, 6, 6, 8, mixed)
    for d in (1, 2, 4):
        case(f"gray{d}-mixed", 13, 5, 0, d, mixed)
    for d in (1, 2, 4, 8):
        case(f"palette{d}-mixed", 11, 6, 3, d, mixed)
    case("palette8-trns", 5, 4, 3, 8, mixed, trns_len=5)
    case("gray16-mixed", 6, 5, 0, 16, mixed)
    case("rgb16-mixed", 5, 4, 2, 16, mixed)
    case("ga16-mixed", 5, 4, 4, 16, mixed)
    case("rgba16-mixed", 5, 4, 6, 16, mixed)
    case("rgb8-adam7", 11, 9, 2, 8, mixed, interlace=True)
    case("gray1-adam7", 10, 10, 0, 1, mixed, interlace=True)
    case("palette4-adam7", 9, 13, 3, 4, mixed, interlace=True)
    case("gray8-adam7-1x1", 1, 1, 0, 8, mixed, interlace=True)
    case("rgba16-adam7-3x2", 3, 2, 6, 16, mixed, interlace=True)
    with open("manifest.txt", "w") as f:
        f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
