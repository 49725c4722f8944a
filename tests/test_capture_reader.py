"""Captures read (issue 12 §1): pcap (microsecond and nanosecond, either byte
order), pcapng (sections in either byte order, several interfaces with
their own clocks, enhanced, simple and obsolete packet blocks), each
gzip-compressed too; and every capture refused, in one line naming the frame
and the offset: not a capture, a truncated record, a frame the snap length
cut, a link type that is not Ethernet.

The files are built here byte by byte with struct, from the published
layouts (libpcap's savefile and the pcapng draft), not with the reader's
own code; the real captures of /work/shared/data/feeds are read as well.
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from pathlib import Path

import dpkt
import pytest

from hft_tui.capture import CaptureWriter
from hft_tui.capture_reader import GZIP_STEP, READ_SIZE, CaptureError, CaptureReader, read_frames

pytestmark = pytest.mark.pure

REAL = Path("/work/shared/data/feeds")
NS = 1_000_000_000
T = 1_706_279_400  # 2024-01-26 14:30:00 UTC
FRAMES = [bytes([i]) * (60 + i) for i in range(1, 6)]  # five frames, each its own length and bytes


# -- pcap -----------------------------------------------------------------------


def pcap_bytes(
    frames: list[bytes],
    *,
    nano: bool = False,
    little: bool = True,
    link: int = 1,
    stamps: list[int] | None = None,
    wirelen: dict[int, int] | None = None,
) -> bytes:
    """libpcap's savefile: a 24-byte header, then per frame 16 bytes + the frame."""
    o = "<" if little else ">"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 65535, link)]
    for i, f in enumerate(frames):
        ns = stamps[i] if stamps else (T + i) * NS + 123_456_789 * (i + 1) % NS
        sec, sub = divmod(ns, NS)
        frac = sub if nano else sub // 1000
        wl = (wirelen or {}).get(i, len(f))
        out += [struct.pack(o + "IIII", sec, frac, len(f), wl), f]
    return b"".join(out)


def expected_stamps(nano: bool) -> list[int]:
    out = []
    for i in range(len(FRAMES)):
        ns = (T + i) * NS + 123_456_789 * (i + 1) % NS
        out.append(ns if nano else ns - ns % 1000)
    return out


def write(tmp_path: Path, name: str, data: bytes, *, gz: bool = False) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if gz else data)
    return p


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("little", [True, False], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_pcap_of_either_clock_and_byte_order_plain_or_gzip(tmp_path, nano, little, gz):
    p = write(tmp_path, "c.pcap", pcap_bytes(FRAMES, nano=nano, little=little), gz=gz)
    with CaptureReader(p) as r:
        got = list(r)
        assert (r.format, r.compressed, r.frames) == ("pcap", gz, len(FRAMES))
    assert [f for _ts, f in got] == FRAMES
    assert [ts for ts, _f in got] == expected_stamps(nano)


def test_what_the_lab_records_reads_back_to_the_nanosecond(tmp_path):
    p = tmp_path / "lab.pcap"
    stamps = [T * NS + 1, T * NS + 999_999_999, (T + 7) * NS + 5]
    with CaptureWriter(p) as w:
        for ts, f in zip(stamps, FRAMES):
            w.write(f, ts)
    assert read_frames(p) == list(zip(stamps, FRAMES))


def test_dpkt_agrees_with_the_frames_read(tmp_path):
    p = write(tmp_path, "c.pcap", pcap_bytes(FRAMES))
    with open(p, "rb") as f:
        theirs = [(round(ts * 1e6), bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]
    ours = [(ts // 1000, f) for ts, f in read_frames(p)]
    assert ours == theirs


def test_many_frames_across_the_read_buffer_and_batches(tmp_path):
    frames = [bytes([i % 251]) * (60 + i % 1400) for i in range(6000)]  # ~4.3 MB: more than one read
    p = write(tmp_path, "big.pcap", pcap_bytes(frames, nano=True, stamps=list(range(6000))))
    with CaptureReader(p) as r:
        batches = list(r.batches(batch_frames=1000))
    assert sum(len(b) for b in batches) == 6000
    assert batches[0].first == 1
    assert [b.first for b in batches[1:]] == [b.first + len(b) for b in batches[:-1]]
    got = [b.frame(i) for b in batches for i in range(len(b))]
    assert got == frames
    assert [ts for b in batches for ts in b.stamps] == list(range(6000))


def test_an_empty_capture_has_no_frames(tmp_path):
    assert read_frames(write(tmp_path, "e.pcap", pcap_bytes([]))) == []


# -- pcapng ---------------------------------------------------------------------


def block(o: str, kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(o + "II", kind, n) + body + struct.pack(o + "I", n)


def option(o: str, code: int, data: bytes) -> bytes:
    return struct.pack(o + "HH", code, len(data)) + data + b"\0" * (-len(data) % 4)


def shb(o: str) -> bytes:
    return block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(o: str, link: int = 1, snaplen: int = 0, tsresol: int | None = None, tsoffset: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(o, 9, bytes([tsresol]))
    if tsoffset:
        opts += option(o, 14, struct.pack(o + "q", tsoffset))
    if opts:
        opts += option(o, 0, b"")
    return block(o, 1, struct.pack(o + "HHI", link, 0, snaplen) + opts)


def epb(o: str, iface: int, ticks: int, frame: bytes, wirelen: int | None = None) -> bytes:
    head = struct.pack(o + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), wirelen or len(frame))
    return block(o, 6, head + frame)


def spb(o: str, frame: bytes) -> bytes:
    return block(o, 3, struct.pack(o + "I", len(frame)) + frame)


def pb(o: str, iface: int, ticks: int, frame: bytes) -> bytes:
    head = struct.pack(o + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
    return block(o, 2, head + frame)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("o", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcapng_interfaces_with_their_own_clocks_and_every_packet_block(tmp_path, o, gz):
    ts = T * NS + 123_456_789
    data = (
        shb(o)
        + idb(o)  # interface 0: microseconds (the default)
        + idb(o, tsresol=9)  # interface 1: nanoseconds
        + idb(o, tsresol=0x80 | 20, tsoffset=100)  # interface 2: 2^-20 s, 100 s added
        + block(o, 5, b"statistics")  # an interface statistics block: not a frame
        + epb(o, 0, ts // 1000, FRAMES[0])
        + epb(o, 1, ts, FRAMES[1])
        + epb(o, 2, (T << 20) + (1 << 19), FRAMES[2])  # T + 0.5 s in 2^-20 units
        + spb(o, FRAMES[3])  # no time of its own
        + pb(o, 1, ts + 7, FRAMES[4])
    )
    with CaptureReader(write(tmp_path, "c.pcapng", data, gz=gz)) as r:
        got = list(r)
        assert (r.format, r.compressed) == ("pcapng", gz)
    assert [f for _t, f in got] == FRAMES
    assert [t for t, _f in got] == [
        ts - ts % 1000,
        ts,
        (T + 100) * NS + NS // 2,
        (T + 100) * NS + NS // 2,
        ts + 7,
    ]


def test_pcapng_sections_in_both_byte_orders(tmp_path):
    data = shb("<") + idb("<", tsresol=9) + epb("<", 0, 5, FRAMES[0])
    data += shb(">") + idb(">", tsresol=9) + epb(">", 0, 6, FRAMES[1])
    assert read_frames(write(tmp_path, "two.pcapng", data)) == [(5, FRAMES[0]), (6, FRAMES[1])]


def test_dpkt_writes_a_pcapng_that_reads_back(tmp_path):
    p = tmp_path / "dpkt.pcapng"
    with open(p, "wb") as f:
        w = dpkt.pcapng.Writer(f)
        for i, frame in enumerate(FRAMES):
            w.writepkt(frame, ts=T + i)
    assert read_frames(p) == [((T + i) * NS, f) for i, f in enumerate(FRAMES)]


def test_the_real_captures_of_both_feeds(tmp_path):
    """Every capture of the shared set: IEX microsecond pcaps, ITCH nanosecond pcaps with a VLAN tag."""
    files = sorted(REAL.glob("*.pcap"))
    assert len(files) >= 10
    for path in files:
        with open(path, "rb") as f:
            theirs = [bytes(buf) for _ts, buf in dpkt.pcap.Reader(f)]
        ours = read_frames(path)
        assert [fr for _ts, fr in ours] == theirs, path.name
        assert all(ts > 1_500_000_000 * NS for ts, _ in ours), path.name


# -- refused, in one line, naming where ---------------------------------------------


def refused(path: Path) -> str:
    with pytest.raises(CaptureError) as err, CaptureReader(path) as r:
        list(r)
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04 a zip file", b"\xd4\xc3", b"just some text\n" * 4],
    ids=["empty", "zip", "two-bytes", "text"],
)
def test_a_file_that_is_no_capture(tmp_path, data):
    assert "not a pcap or pcapng capture" in refused(write(tmp_path, "x.pcap", data))


def test_a_gzip_file_of_something_else(tmp_path):
    assert "not a pcap or pcapng capture" in refused(write(tmp_path, "x.pcap.gz", b"hello" * 10, gz=True))
    assert "inside the gzip data" in refused(write(tmp_path, "y.pcap.gz", b"hello" * 10, gz=True))


def test_a_record_cut_short(tmp_path):
    data = pcap_bytes(FRAMES)
    text = refused(write(tmp_path, "cut.pcap", data[:-10]))
    last = 24 + sum(16 + len(f) for f in FRAMES[:-1])
    assert f"frame 5 (offset {last:,})" in text and "cut short" in text


def test_a_record_header_cut_short(tmp_path):
    data = pcap_bytes(FRAMES[:2]) + b"\x01\x02\x03"
    text = refused(write(tmp_path, "cut.pcap", data))
    assert "frame 3" in text and "header is cut short" in text


def test_a_truncated_gzip_stream(tmp_path):
    raw = gzip.compress(pcap_bytes(FRAMES * 200))
    text = refused(write(tmp_path, "cut.pcap.gz", raw[: len(raw) // 2]))
    assert "gzip" in text and "cut short or corrupt" in text


def test_a_truncated_gzip_stream_names_the_uncompressed_bytes_read_before_it(tmp_path):
    rng = random.Random(7)
    frames = [rng.randbytes(1400) for _ in range(7000)]  # ~10 MB that gzip cannot shrink: reads of 4 MiB
    raw = gzip.compress(pcap_bytes(frames), compresslevel=1)
    cut = raw[: len(raw) * 6 // 10]
    readable = len(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut))
    whole_steps = readable // GZIP_STEP * GZIP_STEP  # the step that meets the cut returns nothing
    assert whole_steps >= READ_SIZE
    text = refused(write(tmp_path, "cut.pcap.gz", cut))
    assert f"within the {GZIP_STEP:,} uncompressed bytes from offset {whole_steps:,}" in text, text


FCS_LINK = 1 | 1 << 26 | 2 << 28  # Ethernet, frames ending in an FCS of two 16-bit words


def test_a_pcap_whose_frames_end_in_their_fcs_reads_the_frames_without_it(tmp_path):
    p = write(tmp_path, "fcs.pcap", pcap_bytes([f + b"\xde\xad\xbe\xef" for f in FRAMES], link=FCS_LINK))
    assert [f for _ts, f in read_frames(p)] == FRAMES


def test_a_record_shorter_than_its_fcs_is_refused(tmp_path):
    text = refused(write(tmp_path, "fcs.pcap", pcap_bytes([FRAMES[0], b"\x01\x02"], link=FCS_LINK)))
    assert "frame 2" in text and "shorter than its 4-byte FCS" in text


def test_a_frame_the_snap_length_cut(tmp_path):
    text = refused(write(tmp_path, "snap.pcap", pcap_bytes(FRAMES, wirelen={2: 1514})))
    assert "frame 3 (offset" in text and "snap length cut the frame" in text and "1,514" in text


def test_a_record_too_long_to_be_a_frame(tmp_path):
    data = pcap_bytes(FRAMES[:1]) + struct.pack("<IIII", T, 0, 10_000_000, 10_000_000) + b"x" * 64
    assert "cannot be a frame" in refused(write(tmp_path, "huge.pcap", data))


@pytest.mark.parametrize("link,name", [(113, " (LINUX_SLL)"), (0, " (NULL)"), (228, " (IPV4)"), (4000, "")])
def test_a_link_type_that_is_not_ethernet(tmp_path, link, name):
    text = refused(write(tmp_path, "sll.pcap", pcap_bytes(FRAMES, link=link)))
    assert f"offset 20: link type {link}{name} is not Ethernet" in text


def test_pcapng_refusals(tmp_path):
    o = "<"
    ok = shb(o) + idb(o) + epb(o, 0, 1, FRAMES[0])
    cases = {
        "cut": (ok + epb(o, 0, 2, FRAMES[1]))[:-6],
        "snap": ok + epb(o, 0, 2, FRAMES[1], wirelen=1514),
        "link": shb(o) + idb(o, link=113) + epb(o, 0, 1, FRAMES[0]),
        "iface": ok + epb(o, 3, 2, FRAMES[1]),
        "lengths": ok[:-4] + struct.pack("<I", 999),
    }
    assert "a pcapng block is cut short" in refused(write(tmp_path, "cut.pcapng", cases["cut"]))
    assert "frame 2" in refused(write(tmp_path, "snap.pcapng", cases["snap"]))
    assert "snap length cut the frame" in refused(write(tmp_path, "snap2.pcapng", cases["snap"]))
    assert "link type 113 (LINUX_SLL) is not Ethernet" in refused(write(tmp_path, "link.pcapng", cases["link"]))
    assert "interface 3, which no block described" in refused(write(tmp_path, "if.pcapng", cases["iface"]))
    assert "two length fields differ" in refused(write(tmp_path, "len.pcapng", cases["lengths"]))


def test_a_missing_file(tmp_path):
    with pytest.raises(CaptureError, match="cannot open: No such file"):
        CaptureReader(tmp_path / "nope.pcap")


def idb_commented(o: str, comment: bytes) -> bytes:
    return block(o, 1, struct.pack(o + "HHI", 1, 0, 0) + option(o, 1, comment) + option(o, 0, b""))


def shb_commented(o: str, comment: bytes) -> bytes:
    return block(
        o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + option(o, 1, comment) + option(o, 0, b"")
    )


CORRUPT_PCAPNG = [  # (why, the file's bytes, what the one line says)
    (
        "an interface block's comment not UTF-8",
        shb("<") + idb_commented("<", b"\xff\xfe") + epb("<", 0, 1, FRAMES[0]),
        "an interface block dpkt cannot read",
    ),
    (
        "a section header's comment not UTF-8",
        shb_commented("<", b"\xff\xfe") + idb("<") + epb("<", 0, 1, FRAMES[0]),
        "a section header block dpkt cannot read",
    ),
    ("an enhanced packet block too short for its fields", shb("<") + idb("<") + block("<", 6, b"\0" * 4), "length 16"),
    ("an obsolete packet block too short for its fields", shb("<") + idb("<") + block("<", 2, b""), "length 12"),
    ("a simple packet block too short for its length", shb("<") + idb("<") + block("<", 3, b""), "length 12"),
    (
        "a block longer than any capture's",
        shb("<") + idb("<") + struct.pack("<III", 6, 0xFFFFFFFC, 0),  # its first 12 bytes, then the end
        "a pcapng block of length 4,294,967,292",
    ),
    (
        "a time past 64 bits of nanoseconds",
        shb("<") + idb("<", tsresol=9) + epb("<", 0, 2**64 - 1, FRAMES[0]),
        "frame 1 (offset",
    ),
    (
        "a time offset past 64 bits of nanoseconds",
        shb("<") + idb("<", tsoffset=2**62) + epb("<", 0, 1, FRAMES[0]),
        "a time past what 64 bits of nanoseconds hold",
    ),
    (
        "more captured than was on the wire",
        shb("<") + idb("<") + epb("<", 0, 1, FRAMES[0], wirelen=10),
        "61 bytes captured of a frame of 10 on the wire",
    ),
    (
        "more captured than the interface's snap length",
        shb("<") + idb("<", snaplen=32) + epb("<", 0, 1, FRAMES[0]),
        "61 bytes captured, past the snap length of 32",
    ),
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("data,says", [c[1:] for c in CORRUPT_PCAPNG], ids=[c[0] for c in CORRUPT_PCAPNG])
def test_a_corrupt_pcapng_is_one_line_of_the_readers_own(tmp_path, data, says, gz):
    assert says in refused(write(tmp_path, "bad.pcapng", data, gz=gz))


def test_a_pcap_record_longer_than_the_wire_or_the_snap_length(tmp_path):
    text = refused(write(tmp_path, "wire.pcap", pcap_bytes(FRAMES, wirelen={1: 10})))
    assert "frame 2 (offset" in text and "62 bytes captured of a frame of 10 on the wire" in text
    snapped = bytearray(pcap_bytes(FRAMES))
    struct.pack_into("<I", snapped, 16, 61)  # the file's snap length: the first frame's, not the second's
    text = refused(write(tmp_path, "snap.pcap", bytes(snapped)))
    assert "frame 2 (offset" in text and "62 bytes captured, past the snap length of 61" in text
