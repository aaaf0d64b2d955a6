"""The run format: append-only files of length-prefixed, checksummed records.

A run directory holds one or more *segment* files (``*.nbrun``). A segment starts with
an 8-byte magic and a little-endian u32 format version; then come records, each

    u32 length of the payload | u32 CRC-32 of the payload | payload

and a payload is

    u32 length of the header | header (UTF-8 JSON) | the arrays' bytes, back to back

where the header names the record's ``kind`` and lists its arrays as ``[name, dtype,
shape]`` in the order their bytes follow. Everything is little-endian and readable with
numpy and the standard library alone (``docs/run-format.md``).

Why this and not SQLite, Arrow or TensorBoard's event files: a writer appends whole
records with one ``write`` to a file it alone owns, so readers need no lock and cannot
hold it up, nothing relies on mmap or advisory locks (network filesystems), and a
writer killed at any point leaves at most one torn record at the end, which a reader
recognises by its length or checksum and treats as not yet written.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"NBVZRUN\0"
VERSION = 1
FILE_HEADER = struct.Struct("<8sI")
RECORD_HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload
MAX_RECORD = 1 << 30  # a length above this is a torn or foreign file, not a record
_KIND_FIRST = b'{"kind":"'  # how the header of every record nbviz writes starts


class RunFormatError(ValueError):
    """A file that is not a run segment, or one written by a newer nbviz."""


@dataclass
class Record:
    """One record: its kind, its JSON header fields and its named arrays."""

    kind: str
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def file_header() -> bytes:
    """The bytes a new segment starts with."""
    return FILE_HEADER.pack(MAGIC, VERSION)


def check_file_header(head: bytes, path: str) -> None:
    """Raise `RunFormatError` unless ``head`` starts a segment this nbviz can read."""
    magic, version = FILE_HEADER.unpack(head[: FILE_HEADER.size])
    if magic != MAGIC:
        raise RunFormatError(f"{path} is not an nbviz run segment (magic {magic!r})")
    if version > VERSION:
        raise RunFormatError(
            f"{path} has run format version {version}, newer than the version {VERSION} "
            "this nbviz reads: upgrade nbviz to read it"
        )


def encode(record: Record) -> bytes:
    """A record's bytes, framed: length, checksum, payload."""
    arrays = {k: np.require(v, requirements="C") for k, v in record.arrays.items()}  # 0-d stays
    layout = [[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()]
    head = json.dumps(
        {"kind": record.kind, "meta": record.meta, "arrays": layout}, separators=(",", ":")
    ).encode()
    payload = b"".join(
        [struct.pack("<I", len(head)), head, *(a.tobytes() for a in arrays.values())]
    )
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes | memoryview) -> Record:
    """A record from its payload (whose checksum was verified)."""
    (n,) = struct.unpack_from("<I", payload)
    head = json.loads(str(payload[4 : 4 + n], "utf-8"))
    arrays, at = {}, 4 + n
    for name, dtype, shape in head["arrays"]:
        dt = np.dtype(dtype)
        count = math.prod(shape)
        arrays[name] = np.frombuffer(payload, dt, count, at).reshape(shape).copy()
        at += count * dt.itemsize
    return Record(head["kind"], head["meta"], arrays)


def scan(
    buffer: bytes, start: int, kinds: frozenset[str] | None = None
) -> Iterator[tuple[Record | None, int]]:
    """Records in ``buffer`` from ``start`` on, each with the offset after it. Stops at the
    first incomplete or damaged record: the rest is not (yet) written.

    With ``kinds``, a record of another kind comes as None, unchecked and undecoded (a
    reader that wants only the scalars of many runs skips the rest's bytes).
    """
    at = start
    view = memoryview(buffer)
    while at + RECORD_HEADER.size <= len(buffer):
        length, crc = RECORD_HEADER.unpack_from(buffer, at)
        end = at + RECORD_HEADER.size + length
        if length > MAX_RECORD or end > len(buffer):
            return
        payload = view[at + RECORD_HEADER.size : end]
        if kinds is not None and _kind(payload) not in kinds:
            yield None, end
        elif zlib.crc32(payload) != crc:
            return
        else:
            yield decode(payload), end
        at = end


def _kind(payload: memoryview) -> str | None:
    """A record's kind, read from its header alone (None if the header is not whole).
    nbviz writes the kind first: its bytes are read without parsing the JSON."""
    if len(payload) < 4:
        return None
    (n,) = struct.unpack_from("<I", payload)
    start = bytes(payload[4 : 4 + min(n, 64)])
    if start.startswith(_KIND_FIRST):
        end = start.find(b'"', len(_KIND_FIRST))
        if end > 0:
            return start[len(_KIND_FIRST) : end].decode()
    try:  # another writer's key order
        return json.loads(bytes(payload[4 : 4 + n])).get("kind")
    except ValueError:
        return None
