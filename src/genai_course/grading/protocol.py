"""Messages between the trusted parent and the sandboxed child.

Frames are an 8-byte big-endian length followed by the payload. Parent -> child payloads are
pickles (the child trusts its parent). Child -> parent payloads are untrusted: they are written with
``torch.save`` and read with ``torch.load(weights_only=True)`` -- which refuses arbitrary classes --
and then walked so that only plain types survive: None, bool, int, float, str, plain CPU
``torch.Tensor`` and list/tuple/dict (str keys) of those. An object with a rigged ``__eq__``, a
tensor subclass or anything else never reaches a comparison.
"""
from __future__ import annotations

import io
import os
import struct

import torch

MAX_FRAME = 256 * 1024 * 1024  # bytes in one message from the child
MAX_DEPTH = 20
_HEADER = struct.Struct(">Q")


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
        return t.as_subclass(torch.Tensor).to("cpu").clone().contiguous()
    if isinstance(x, (torch.Size,)):
        return [int(v) for v in x]
    if isinstance(x, torch.dtype):
        return str(x)
    mod = type(x).__module__
    if mod == "numpy":
        import numpy as np

        if isinstance(x, np.ndarray):
            return torch.from_numpy(np.array(x, copy=True))
        if isinstance(x, np.generic):
            return x.item()
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, str):
        return str(x)
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


def encode_reply(reply: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(reply, buf)
    return buf.getvalue()


# --- parent side ---------------------------------------------------------------------------------

def _check_plain(x, depth: int = 0):
    if depth > MAX_DEPTH + 2:
        raise ProtocolError("reply nested too deeply")
    t = type(x)
    if x is None or t in (bool, int, float, str):
        return x
    if t is torch.Tensor:
        if x.device.type != "cpu" or x.requires_grad:
            raise ProtocolError("reply tensor is not a plain CPU tensor")
        return x
    if t in (list, tuple):
        items = [_check_plain(v, depth + 1) for v in x]
        return items if t is list else tuple(items)
    if t is dict:
        if not all(type(k) is str for k in x):
            raise ProtocolError("reply dict has non-str keys")
        return {k: _check_plain(v, depth + 1) for k, v in x.items()}
    raise ProtocolError(f"reply holds a {t.__name__}")


def decode_reply(payload: bytes) -> dict:
    """Parent side: decode an untrusted reply into plain values (raise ProtocolError otherwise)."""
    try:
        obj = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - anything malformed is a protocol error
        raise ProtocolError(f"unreadable reply ({type(e).__name__})") from None
    obj = _check_plain(obj)
    if type(obj) is not dict or type(obj.get("ok")) is not bool:
        raise ProtocolError("reply is not a status dict")
    return obj
