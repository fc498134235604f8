"""The child -> parent channel accepts plain values only."""
from __future__ import annotations

import io
import os
import pickle

import pytest
import torch

from genai_course.grading.protocol import (ProtocolError, Unsupported, decode_reply, encode_reply, read_frame,
                                          to_plain, write_frame)


class AlwaysEqual:
    def __eq__(self, other):
        return True


class SneakyTensor(torch.Tensor):
    pass


def test_plain_values_round_trip():
    value = {"a": [1, 2.5, "s", None, True], "t": torch.arange(6).reshape(2, 3), "n": (torch.ones(2),)}
    out = decode_reply(encode_reply({"ok": True, "value": to_plain(value)}))
    assert out["ok"] is True and out["value"]["a"] == [1, 2.5, "s", None, True]
    assert torch.equal(out["value"]["t"], value["t"]) and type(out["value"]["n"]) is tuple


def test_child_side_refuses_unknown_objects():
    with pytest.raises(Unsupported, match="AlwaysEqual"):
        to_plain(AlwaysEqual())
    with pytest.raises(Unsupported, match="keys must be str"):
        to_plain({1: 2})
    p = torch.nn.Parameter(torch.ones(2))
    assert type(to_plain(p)) is torch.Tensor and not to_plain(p).requires_grad
    assert type(to_plain(torch.ones(2).as_subclass(SneakyTensor))) is torch.Tensor


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # raised by the hostile raw pickle
def test_parent_side_refuses_pickled_objects_and_subclasses():
    buf = io.BytesIO()
    torch.save({"ok": True, "value": AlwaysEqual()}, buf)
    with pytest.raises(ProtocolError):
        decode_reply(buf.getvalue())
    with pytest.raises(ProtocolError):
        decode_reply(pickle.dumps({"ok": True, "value": os.system}))
    with pytest.raises(ProtocolError, match="status dict"):
        decode_reply(encode_reply({"value": 1}))
    with pytest.raises(ProtocolError):
        decode_reply(b"garbage")


def test_frames_and_size_limit():
    r, w = os.pipe()
    write_frame(w, b"hello")
    assert read_frame(r) == b"hello"
    write_frame(w, b"x" * 100)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        read_frame(r, limit=10)
    os.close(w)
    os.close(r)
