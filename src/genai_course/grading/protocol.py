"""Messages between the trusted parent and the sandboxed child.

Frames are an 8-byte big-endian length followed by the payload. Parent -> child payloads are
pickles (the child trusts its parent). Child -> parent payloads are untrusted, so they use a small
format of our own that the parent decodes with hard bounds -- no pickle, no ``torch.load``:

    value  := tag, body
    N | T | F                    None, True, False
    I  u16 len, ascii digits     int (at most 64 digits)
    D  8-byte IEEE double        float
    S  u32 len, utf-8            str
    L | U | M  u32 count, items  list, tuple, dict (M: str key, value pairs)
    X  u8 dtype, u8 ndim, ndim*u64 dims, raw bytes   dense C-contiguous CPU tensor

A tensor's byte count is exactly ``prod(shape) * itemsize``, so a reply can never describe more
elements than it carries (no strides, no shared storage, no references). The decoder also caps the
number of values, the total number of tensor elements and the nesting depth, and walks only what
the frame holds, so a malicious 2 KB reply costs the parent at most 2 KB of work.
"""
from __future__ import annotations

import math
import os
import struct

import torch

MAX_FRAME = 64 * 1024 * 1024  # bytes in one message from the child
MAX_DEPTH = 20  # nesting of lists/tuples/dicts
MAX_NODES = 1_000_000  # values in one reply
MAX_ELEMENTS = 32 * 1024 * 1024  # tensor elements in one reply, all tensors together
MAX_INT_DIGITS = 64
_HEADER = struct.Struct(">Q")

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
           torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128]
_DTYPE_CODE = {d: i for i, d in enumerate(_DTYPES)}


class ProtocolError(Exception):
    """The child sent something that is not a valid message."""


def write_frame(fd: int, payload: bytes) -> None:
    data = _HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int = MAX_FRAME) -> bytes:
    (size,) = _HEADER.unpack(read_exact(fd, _HEADER.size))
    if size > limit:
        raise ProtocolError(f"message of {size} bytes exceeds the limit of {limit}")
    return read_exact(fd, size)


# --- child side ----------------------------------------------------------------------------------

class Unsupported(TypeError):
    pass


def to_plain(x, depth: int = 0):
    """Child side: convert a result into plain, serialisable values (or raise Unsupported)."""
    if depth > MAX_DEPTH:
        raise Unsupported("the result is nested too deeply")
    if x is None or type(x) in (bool, int, float, str):
        return x
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_sparse or t.layout != torch.strided:
            t = t.to_dense()
        if t.dtype not in _DTYPE_CODE:
            raise Unsupported(f"a tensor of dtype {t.dtype}")
        return t.as_subclass(torch.Tensor).to("cpu").clone().contiguous()
    if isinstance(x, torch.Size):
        return [int(v) for v in x]
    if isinstance(x, torch.dtype):
        return str(x)
    if type(x).__module__ == "numpy":
        import numpy as np

        if isinstance(x, np.ndarray):
            return to_plain(torch.from_numpy(np.array(x, copy=True)), depth)
        if isinstance(x, np.generic):
            return to_plain(x.item(), depth)
    for kind in (bool, int, float, str):
        if isinstance(x, kind):
            return kind(x)
    if isinstance(x, (list, tuple)):
        items = [to_plain(v, depth + 1) for v in x]
        return items if isinstance(x, list) else tuple(items)
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise Unsupported(f"dictionary keys must be str, got {type(k).__name__}")
            out[str(k)] = to_plain(v, depth + 1)
        return out
    raise Unsupported(f"an object of type {type(x).__name__}")


def _encode(x, out: list) -> None:
    t = type(x)
    if x is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if x else b"F")
    elif t is int:
        digits = str(x).encode()
        if len(digits) > MAX_INT_DIGITS:
            raise Unsupported(f"an integer with {len(digits)} digits")
        out += [b"I", struct.pack(">H", len(digits)), digits]
    elif t is float:
        out += [b"D", struct.pack(">d", x)]
    elif t is str:
        data = x.encode("utf-8", "surrogatepass")
        out += [b"S", struct.pack(">I", len(data)), data]
    elif t in (list, tuple):
        out += [b"L" if t is list else b"U", struct.pack(">I", len(x))]
        for v in x:
            _encode(v, out)
    elif t is dict:
        out += [b"M", struct.pack(">I", len(x))]
        for k, v in x.items():
            _encode(str(k), out)
            _encode(v, out)
    elif t is torch.Tensor:
        shape = tuple(x.shape)
        raw = x.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if x.numel() else b""
        out += [b"X", struct.pack(">BB", _DTYPE_CODE[x.dtype], len(shape)), struct.pack(f">{len(shape)}Q", *shape), raw]
    else:  # to_plain ran first: anything else is a bug of ours
        raise Unsupported(f"an object of type {t.__name__}")


def encode_reply(reply: dict) -> bytes:
    """Child side: ``reply`` must already be plain (see ``to_plain``)."""
    out: list[bytes] = []
    _encode(reply, out)
    return b"".join(out)


# --- parent side ---------------------------------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0
        self.nodes = 0
        self.elements = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("reply is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def value(self, depth: int = 0):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ProtocolError(f"reply holds more than {MAX_NODES:,} values")
        if depth > MAX_DEPTH + 2:
            raise ProtocolError("reply nested too deeply")
        tag = bytes(self.take(1))
        if tag == b"N":
            return None
        if tag in (b"T", b"F"):
            return tag == b"T"
        if tag == b"I":
            (n,) = self.unpack(">H")
            if n > MAX_INT_DIGITS:
                raise ProtocolError("reply integer too long")
            text = bytes(self.take(n)).decode("ascii", "strict")
            if not text.lstrip("-").isdigit():
                raise ProtocolError("reply integer malformed")
            return int(text)
        if tag == b"D":
            return self.unpack(">d")[0]
        if tag == b"S":
            (n,) = self.unpack(">I")
            return bytes(self.take(n)).decode("utf-8", "replace")
        if tag in (b"L", b"U", b"M"):
            (n,) = self.unpack(">I")
            if n > len(self.data) - self.pos:  # every item takes at least one byte
                raise ProtocolError("reply container longer than the message")
            if tag == b"M":
                out = {}
                for _ in range(n):
                    key = self.value(depth + 1)
                    if type(key) is not str:
                        raise ProtocolError("reply dict has non-str keys")
                    out[key] = self.value(depth + 1)
                return out
            items = [self.value(depth + 1) for _ in range(n)]
            return items if tag == b"L" else tuple(items)
        if tag == b"X":
            code, ndim = self.unpack(">BB")
            if code >= len(_DTYPES) or ndim > 16:
                raise ProtocolError("reply tensor has an unknown dtype or too many dimensions")
            shape = self.unpack(f">{ndim}Q")
            numel = math.prod(shape)
            self.elements += numel
            if self.elements > MAX_ELEMENTS:
                raise ProtocolError(f"reply holds more than {MAX_ELEMENTS:,} tensor elements")
            dtype = _DTYPES[code]
            nbytes = numel * torch.empty((), dtype=dtype).element_size()
            raw = self.take(nbytes)
            if numel == 0:
                return torch.empty(shape, dtype=dtype)
            return torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)
        raise ProtocolError(f"reply has an unknown tag {tag!r}")


def decode_reply(payload: bytes) -> dict:
    """Parent side: decode an untrusted reply into plain values (raise ProtocolError otherwise)."""
    if len(payload) > MAX_FRAME:
        raise ProtocolError("reply too large")
    reader = _Reader(payload)
    try:
        obj = reader.value()
    except ProtocolError:
        raise
    except (struct.error, ValueError, TypeError, UnicodeDecodeError, RuntimeError, OverflowError, MemoryError) as e:
        raise ProtocolError(f"unreadable reply ({type(e).__name__})") from None
    if reader.pos != len(payload):
        raise ProtocolError("reply has trailing bytes")
    if type(obj) is not dict or type(obj.get("ok")) is not bool:
        raise ProtocolError("reply is not a status dict")
    return obj
