"""Captures read: pcap and pcapng files of Ethernet frames, gzip-compressed or not.

What is read (issue 12 §1):

* pcap with microsecond or nanosecond timestamps, in either byte order
  (and the "modified" pcap of old Linux tools);
* pcapng: every section (each with its own byte order), every interface
  (each with its own timestamp resolution and offset), enhanced, simple and
  the obsolete packet blocks; other blocks are skipped;
* either one compressed with gzip (recognised by its magic, not its name);
* link type Ethernet only.

What refuses the file, in one line naming the frame and the file offset
(for a gzip file: the offset in the uncompressed data): a file that is none
of these, a record or block cut short by the end of the file, a record whose
length cannot be a frame's, a frame the snap length cut (the capture lost
bytes of it: replaying or backtesting it would be a lie), a link type that is
not Ethernet.  Nothing is read past the first problem.

dpkt is the reader: its classes parse the file and section headers, the
interface blocks and their options, and its record layouts
(``__hdr_fmt__``) are what the per-frame loop unpacks, with struct, straight
from a large buffer.  Building a dpkt object per frame costs about a
microsecond, which a backtest of 200,000 frames a second cannot spend.

Frames come in batches (:class:`FrameBatch`): the frames of one buffer as
offsets into it, with their capture times in nanoseconds since the epoch, so
the backtest can hand a whole batch to the kernel without copying a frame.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import dpkt
from dpkt import pcap, pcapng

from .errors import HftError

GZIP_MAGIC = b"\x1f\x8b"
# The largest record that can be a frame: 256 KiB is libpcap's own limit
# (MAXIMUM_SNAPLEN); a larger length is a corrupt or misread file.
MAX_RECORD = 262_144
READ_SIZE = 4 << 20  # bytes read at a time
GZIP_STEP = 16 << 10  # ... and of a gzip file's uncompressed data, at most this much a call
BATCH_FRAMES = 8192  # frames handed out at a time (at most)
NS_PER_SEC = 1_000_000_000

ETHERNET = pcap.DLT_EN10MB
# dpkt's DLT_* names, for a link type the message can name
LINK_TYPE_NAMES = {v: k[4:] for k, v in vars(pcap).items() if k.startswith("DLT_") and isinstance(v, int)}

_PCAP_NANO = (pcap.TCPDUMP_MAGIC_NANO, pcap.PMUDPCT_MAGIC_NANO)
_PCAP_LITTLE = (pcap.PMUDPCT_MAGIC, pcap.PMUDPCT_MAGIC_NANO, pcap.PACPDOM_MAGIC)
# The pcap header's link-type field (libpcap's LT_LINKTYPE, LT_FCS_LENGTH_PRESENT): the type
# in its low bits, a flag saying the frames end in an FCS, and its length in 16-bit words in
# the top four bits.
_PCAP_LINKTYPE = 0x03FFFFFF
_PCAP_FCS_PRESENT = 0x04000000
_PCAPNG_SHB = struct.pack(">I", pcapng.PCAPNG_BT_SHB)  # a palindrome: the same in either order
# The smallest block of each packet kind (its fixed fields and both lengths), and the largest
# block read at all: a frame is at most MAX_RECORD; a name-resolution or custom block of more
# than 16 MiB is no market-data capture, and asking for it would be a read of up to 4 GiB.
_MIN_BLOCK = {pcapng.PCAPNG_BT_EPB: 32, pcapng.PCAPNG_BT_PB: 32, pcapng.PCAPNG_BT_SPB: 16}
MAX_BLOCK = 16 << 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the stamps' range (an array of signed 64-bit ns)


def _longer(caplen: int, wirelen: int, snaplen: int) -> str:
    """Why a record's captured length cannot be (a corrupt file)."""
    if caplen > wirelen:
        return f"{caplen:,} bytes captured of a frame of {wirelen:,} on the wire (a corrupt file?)"
    return f"{caplen:,} bytes captured, past the snap length of {snaplen:,} (a corrupt file?)"


class CaptureError(HftError):
    """A capture that cannot be read: the file, the frame and the offset in one line."""


def link_type_name(link: int) -> str:
    name = LINK_TYPE_NAMES.get(link)
    return f"{link} ({name})" if name else str(link)


@dataclass
class FrameBatch:
    """Frames ``first`` .. ``first + len - 1`` (numbered from 1 in the file):
    frame i is ``data[offsets[i] : offsets[i] + lengths[i]]``, captured at
    ``stamps[i]`` ns since the epoch."""

    data: bytes
    first: int
    offsets: array[int] = field(default_factory=lambda: array("I"))
    lengths: array[int] = field(default_factory=lambda: array("I"))
    stamps: array[int] = field(default_factory=lambda: array("q"))

    def __len__(self) -> int:
        return len(self.offsets)

    def frame(self, i: int) -> bytes:
        off = self.offsets[i]
        return self.data[off : off + self.lengths[i]]


class _Buffer:
    """The file read in large pieces: ``data[pos:]`` is what is unread of
    them, and ``base`` the file offset of ``data[0]``."""

    def __init__(self, f: BinaryIO, what: str, start: bytes = b"") -> None:
        self.f = f
        self.what = what
        self.data = start
        self.pos = 0
        self.base = 0
        self.eof = False
        self.read_bytes = 0  # what the file gave so far (a gzip file's: uncompressed)

    def offset(self, pos: int) -> int:
        return self.base + pos

    def fill(self, need: int) -> bool:
        """Makes ``data[pos:pos + need]`` available (moving the rest to the
        front); False when the file ends first."""
        if len(self.data) - self.pos >= need:
            return True
        rest = self.data[self.pos :]
        self.base += self.pos
        self.pos = 0
        chunks = [rest]
        have = len(rest)
        while have < need and not self.eof:
            piece = self._read(max(READ_SIZE, need - have))
            if not piece:
                self.eof = True
                break
            chunks.append(piece)
            have += len(piece)
        self.data = b"".join(chunks)
        return have >= need

    def at_end(self) -> bool:
        return self.pos >= len(self.data) and (self.eof or not self.fill(1))

    def _read(self, n: int) -> bytes:
        # A gzip file in steps: a read that meets a cut or corrupt stream returns nothing of
        # what it had, so the count of uncompressed bytes read before the error is exact to a step.
        step = GZIP_STEP if isinstance(self.f, gzip.GzipFile) else n
        pieces = []
        try:
            while n > 0:
                piece = self.f.read(min(n, step))
                if not piece:
                    break
                pieces.append(piece)
                self.read_bytes += len(piece)
                n -= len(piece)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise CaptureError(
                f"{self.what}: the gzip data is cut short or corrupt within the {GZIP_STEP:,} uncompressed "
                f"bytes from offset {self.read_bytes:,} ({exc})"
            ) from None
        except OSError as exc:
            raise CaptureError(f"{self.what}: cannot read: {exc.strerror or exc}") from None
        return b"".join(pieces)


@dataclass(frozen=True)
class _Interface:
    """A pcapng interface: its link type, snap length and clock."""

    link: int
    snaplen: int
    ns_mul: int = 1000  # ticks -> ns: ticks * ns_mul // ns_div (microseconds by default)
    ns_div: int = 1
    offset_ns: int = 0

    def ns(self, ticks: int) -> int:
        return ticks * self.ns_mul // self.ns_div + self.offset_ns


def _interface(idb: pcapng.InterfaceDescriptionBlock, little: bool) -> _Interface:
    mul, div, offset = 1000, 1, 0
    for opt in idb.opts:
        if opt.code == pcapng.PCAPNG_OPT_IF_TSRESOL and opt.data:
            res = opt.data[0]
            if res & 0x80:  # a negative power of two
                mul, div = NS_PER_SEC, 1 << (res & 0x7F)
            elif (res & 0x7F) <= 9:
                mul, div = 10 ** (9 - res), 1
            else:
                mul, div = 1, 10 ** (res - 9)
        elif opt.code == pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
            offset = struct.unpack("<q" if little else ">q", opt.data[:8])[0] * NS_PER_SEC
    return _Interface(idb.linktype, idb.snaplen, mul, div, offset)


def _leading(cls: type[dpkt.Packet], fields: int) -> struct.Struct:
    """The first ``fields`` fields of a dpkt record layout, as one struct."""
    fmt: str = cls.__hdr_fmt__
    return struct.Struct(fmt[0] + fmt[1:][:fields])


class CaptureReader:
    """One capture file, read once from the start (see the module doc).

    ``format`` is "pcap" or "pcapng", ``compressed`` whether it is gzip.
    Counting as it goes: ``frames`` read so far.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.what = f"capture {self.path}"
        try:
            raw = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise CaptureError(f"{self.what}: cannot open: {exc.strerror}") from None
        self._raw = raw
        self._file: BinaryIO = raw
        try:
            self.compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if self.compressed:
                self._file = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            self._buf = _Buffer(self._file, self.what)
            self._buf.fill(4)
            magic = self._buf.data[:4]
            if len(magic) == 4 and magic == _PCAPNG_SHB:
                self.format = "pcapng"
            elif len(magic) == 4 and struct.unpack(">I", magic)[0] in pcap.MAGIC_TO_PKT_HDR:
                self.format = "pcap"
            else:
                shown = " ".join(f"{b:02x}" for b in magic) or "nothing"
                inner = " inside the gzip data" if self.compressed else ""
                raise CaptureError(f"{self.what}: not a pcap or pcapng capture (it begins with {shown}{inner})")
        except BaseException:
            self.close()
            raise
        self.frames = 0

    def close(self) -> None:
        self._file.close()
        self._raw.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- what callers use ---------------------------------------------------------

    def batches(self, batch_frames: int = BATCH_FRAMES) -> Iterator[FrameBatch]:
        """Every frame of the file in order, ``batch_frames`` at a time at most."""
        if self.format == "pcap":
            yield from self._pcap(batch_frames)
        else:
            yield from self._pcapng(batch_frames)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """(capture time in ns, frame) for every frame."""
        for b in self.batches():
            for i in range(len(b)):
                yield b.stamps[i], b.frame(i)

    # -- errors ---------------------------------------------------------------------

    def _fail(self, frame: int | None, pos: int, what: str) -> CaptureError:
        where = f"offset {self._buf.offset(pos):,}"
        if self.compressed:
            where += " of the uncompressed data"
        return CaptureError(f"{self.what}: {f'frame {frame} ({where})' if frame else where}: {what}")

    # -- pcap -----------------------------------------------------------------------

    def _pcap(self, batch_frames: int) -> Iterator[FrameBatch]:
        buf = self._buf
        hdr_len = pcap.FileHdr.__hdr_len__
        if not buf.fill(hdr_len):
            raise self._fail(None, 0, f"the file header is cut short ({len(buf.data)} of {hdr_len} bytes)")
        magic = struct.unpack_from(">I", buf.data)[0]
        little = magic in _PCAP_LITTLE
        fh = (pcap.LEFileHdr if little else pcap.FileHdr)(buf.data[:hdr_len])
        if fh.v_major != pcap.PCAP_VERSION_MAJOR:
            raise self._fail(None, 4, f"pcap version {fh.v_major}.{fh.v_minor} is not 2.x")
        link = fh.linktype & _PCAP_LINKTYPE
        if link != ETHERNET:
            raise self._fail(None, 20, f"link type {link_type_name(link)} is not Ethernet")
        # The frames end in their FCS when the header says so: it is taken off, as a NIC does.
        fcs = (fh.linktype >> 28) * 2 if fh.linktype & _PCAP_FCS_PRESENT else 0
        rec = _leading(pcap.MAGIC_TO_PKT_HDR[magic], 4)  # seconds, fraction, captured, on the wire
        rec_len = pcap.MAGIC_TO_PKT_HDR[magic].__hdr_len__
        frac_ns = 1 if magic in _PCAP_NANO else 1000
        unpack = rec.unpack_from
        snaplen = fh.snaplen
        buf.pos = hdr_len
        frame = self.frames
        while True:
            data, pos = buf.data, buf.pos
            end = len(data)
            batch = FrameBatch(data, frame + 1)
            offs, lens, stamps = batch.offsets.append, batch.lengths.append, batch.stamps.append
            n = 0
            while n < batch_frames and end - pos >= rec_len:
                sec, frac, caplen, wirelen = unpack(data, pos)
                if end - pos - rec_len < caplen:
                    break  # the record continues in the next piece
                frame += 1
                if caplen > MAX_RECORD:
                    raise self._fail(frame, pos, f"a record of {caplen:,} bytes cannot be a frame (a corrupt file?)")
                if caplen < wirelen:
                    raise self._fail(
                        frame, pos, f"the snap length cut the frame: {caplen:,} of its {wirelen:,} bytes were captured"
                    )
                if caplen > wirelen or (snaplen and caplen > snaplen):
                    raise self._fail(frame, pos, _longer(caplen, wirelen, snaplen))
                if caplen < fcs:
                    raise self._fail(frame, pos, f"a record of {caplen} bytes is shorter than its {fcs}-byte FCS")
                offs(pos + rec_len)
                lens(caplen - fcs)
                stamps(sec * NS_PER_SEC + frac * frac_ns)
                pos += rec_len + caplen
                n += 1
            buf.pos = pos
            self.frames = frame
            if n:
                yield batch
            if n == batch_frames:
                continue
            if buf.at_end():
                return
            if end - pos >= rec_len:
                caplen = unpack(data, pos)[2]
                if caplen > MAX_RECORD:
                    raise self._fail(
                        frame + 1, pos, f"a record of {caplen:,} bytes cannot be a frame (a corrupt file?)"
                    )
                if not buf.fill(rec_len + caplen):
                    left = len(buf.data) - buf.pos - rec_len
                    raise self._fail(
                        frame + 1, buf.pos, f"the record is cut short: {left:,} of its {caplen:,} bytes before the end"
                    )
            elif not buf.fill(rec_len):
                left = len(buf.data) - buf.pos
                raise self._fail(
                    frame + 1, buf.pos, f"the record header is cut short: {left} of {rec_len} bytes before the end"
                )

    # -- pcapng ---------------------------------------------------------------------

    def _pcapng(self, batch_frames: int) -> Iterator[FrameBatch]:
        buf = self._buf
        section = _Section(True)  # replaced by the first block, a section header
        frame, last_ts = self.frames, 0
        while True:
            data, pos = buf.data, buf.pos
            end = len(data)
            batch = FrameBatch(data, frame + 1)
            offs, lens, stamps = batch.offsets.append, batch.lengths.append, batch.stamps.append
            head, tail, ifaces = section.head.unpack_from, section.tail.unpack_from, section.ifaces
            n = 0
            while n < batch_frames and end - pos >= 12:
                kind, blen = head(data, pos)
                if kind == pcapng.PCAPNG_BT_SHB or end - pos < blen:
                    break  # a new section (perhaps in the other byte order), or a block in the next piece
                if blen < _MIN_BLOCK.get(kind, 12) or blen % 4 or blen > MAX_BLOCK:
                    raise self._fail(None, pos, f"a pcapng block of length {blen:,} (a corrupt file?)")
                if tail(data, pos + blen - 4)[0] != blen:
                    raise self._fail(None, pos, "a pcapng block whose two length fields differ (a corrupt file?)")
                if kind == pcapng.PCAPNG_BT_EPB:
                    _, _, iface, hi, lo, caplen, wirelen = section.epb(data, pos)
                    start, room = pos + 28, blen - 32
                elif kind == pcapng.PCAPNG_BT_SPB:
                    iface, hi, lo, wirelen = 0, -1, 0, section.spb(data, pos)[2]
                    start, room = pos + 12, blen - 16
                    caplen = min(wirelen, ifaces[0].snaplen or wirelen) if ifaces else wirelen
                elif kind == pcapng.PCAPNG_BT_PB:
                    _, _, iface, _drops, hi, lo, caplen, wirelen = section.pb(data, pos)
                    start, room = pos + 28, blen - 32
                else:
                    if kind == pcapng.PCAPNG_BT_IDB:
                        ifaces.append(self._interface(data[pos : pos + blen], section.little, pos))
                    pos += blen  # statistics, name resolution, custom blocks: not frames
                    continue
                frame += 1
                if iface >= len(ifaces):
                    raise self._fail(frame, pos, f"a packet of interface {iface}, which no block described")
                itf = ifaces[iface]
                if itf.link != ETHERNET:
                    raise self._fail(frame, pos, f"link type {link_type_name(itf.link)} is not Ethernet")
                if caplen > room or caplen > MAX_RECORD:
                    raise self._fail(frame, pos, f"a packet of {caplen:,} bytes in a block of {blen:,} (corrupt?)")
                if caplen < wirelen:
                    raise self._fail(
                        frame, pos, f"the snap length cut the frame: {caplen:,} of its {wirelen:,} bytes were captured"
                    )
                if caplen > wirelen or (itf.snaplen and caplen > itf.snaplen):
                    raise self._fail(frame, pos, _longer(caplen, wirelen, itf.snaplen))
                if hi >= 0:  # a simple packet block has no time: the frame before's
                    last_ts = itf.ns((hi << 32) | lo)
                    if not INT64_MIN <= last_ts <= INT64_MAX:
                        raise self._fail(frame, pos, "a time past what 64 bits of nanoseconds hold (a corrupt file?)")
                offs(start)
                lens(caplen)
                stamps(last_ts)
                pos += blen
                n += 1
            buf.pos = pos
            self.frames = frame
            if n:
                yield batch
            if n == batch_frames:
                continue
            if buf.at_end():
                return
            if not buf.fill(12):
                left = len(buf.data) - buf.pos
                raise self._fail(None, buf.pos, f"a pcapng block is cut short: {left} bytes before the end")
            kind, blen = section.head.unpack_from(buf.data, buf.pos)
            if kind == pcapng.PCAPNG_BT_SHB:
                section = self._section()
                continue
            if blen < _MIN_BLOCK.get(kind, 12) or blen % 4 or blen > MAX_BLOCK:
                raise self._fail(None, buf.pos, f"a pcapng block of length {blen:,} (a corrupt file?)")
            if not buf.fill(blen):
                left = len(buf.data) - buf.pos
                raise self._fail(
                    None, buf.pos, f"a pcapng block is cut short: {left:,} of its {blen:,} bytes before the end"
                )

    def _interface(self, block: bytes, little: bool, pos: int) -> _Interface:
        try:
            idb = (pcapng.InterfaceDescriptionBlockLE if little else pcapng.InterfaceDescriptionBlock)(block)
        except (dpkt.UnpackError, struct.error, ValueError) as exc:  # ValueError: an option's text not UTF-8
            raise self._fail(None, pos, f"an interface block dpkt cannot read ({exc!r})") from None
        return _interface(idb, little)

    def _section(self) -> _Section:
        """The section header at the read position, read (and passed)."""
        buf = self._buf
        if not buf.fill(12):
            raise self._fail(None, buf.pos, "the section header block is cut short")
        data, pos = buf.data, buf.pos
        bom = data[pos + 8 : pos + 12]
        if bom not in (struct.pack("<I", pcapng.BYTE_ORDER_MAGIC), struct.pack(">I", pcapng.BYTE_ORDER_MAGIC)):
            raise self._fail(None, pos, "a section header block without the byte-order magic")
        little = bom == struct.pack("<I", pcapng.BYTE_ORDER_MAGIC)
        blen = struct.unpack_from("<I" if little else ">I", data, pos + 4)[0]
        if blen < 28 or blen % 4:
            raise self._fail(None, pos, f"a section header block of length {blen} (a corrupt file?)")
        if not buf.fill(blen):
            left = len(buf.data) - buf.pos
            raise self._fail(None, pos, f"the section header block is cut short: {left} of its {blen} bytes")
        data, pos = buf.data, buf.pos
        try:
            shb = (pcapng.SectionHeaderBlockLE if little else pcapng.SectionHeaderBlock)(data[pos : pos + blen])
        except (dpkt.UnpackError, struct.error, ValueError) as exc:  # ValueError: an option's text not UTF-8
            raise self._fail(None, pos, f"a section header block dpkt cannot read ({exc!r})") from None
        if shb.v_major != pcapng.PCAPNG_VERSION_MAJOR:
            raise self._fail(None, pos, f"pcapng version {shb.v_major}.{shb.v_minor} is not 1.x")
        buf.pos = pos + blen
        return _Section(little)


class _Section:
    """A pcapng section: its byte order, its interfaces and its record layouts (dpkt's)."""

    def __init__(self, little: bool) -> None:
        self.little = little
        self.ifaces: list[_Interface] = []
        self.head = struct.Struct("<II" if little else ">II")
        self.tail = struct.Struct("<I" if little else ">I")
        self.epb = _leading(pcapng.EnhancedPacketBlockLE if little else pcapng.EnhancedPacketBlock, 7).unpack_from
        self.pb = _leading(pcapng.PacketBlockLE if little else pcapng.PacketBlock, 8).unpack_from
        self.spb = struct.Struct(("<" if little else ">") + "III").unpack_from


def read_frames(path: str | os.PathLike[str]) -> list[tuple[int, bytes]]:
    """Every frame of a capture with its time (ns): for small captures and tests."""
    with CaptureReader(path) as r:
        return list(r)
