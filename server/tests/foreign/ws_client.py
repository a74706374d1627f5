#!/usr/bin/env python3
"""A Confab client written from SPEC.md alone, over WebSocket.

It uses the `websockets` package (PyPI) for the transport and encodes the
protocol's frames by hand: one frame per binary message (SPEC.md §1.4).

    ws_client.py URL USERNAME PASSWORD ROOM_ID SAY EXPECT [--ca PEM]

Registers USERNAME (or logs in if taken), joins ROOM_ID, sends SAY, then
waits for a message EXPECT from someone else in the room and prints one JSON
line per step. Exits non-zero on any protocol error or after 10 seconds.
"""

import asyncio
import json
import ssl
import struct
import sys

import websockets

HELLO, REGISTER, LOGIN, JOIN_ROOM, SEND_MESSAGE = 0x01, 0x03, 0x04, 0x12, 0x15
WELCOME, ERROR, SESSION, ROOM, MESSAGE_ACK, EVENT, CLOSE = 0x40, 0x43, 0x44, 0x45, 0x48, 0x80, 0x82
USERNAME_TAKEN = 203


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(s):
    data = s.encode()
    return varint(len(data)) + data


def frame(kind, req_id, payload):
    return struct.pack(">IBI", 5 + len(payload), kind, req_id) + payload


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def varint(self):
        shift = value = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def string(self):
        n = self.varint()
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def u8(self):
        self.pos += 1
        return self.data[self.pos - 1]


def split(message):
    """One binary message holds exactly one frame."""
    length, kind, req_id = struct.unpack(">IBI", message[:9])
    assert length + 4 == len(message), "one whole frame per message"
    return kind, req_id, Reader(message[9:])


def say(**fields):
    print(json.dumps(fields), flush=True)


# Room messages seen so far: (room, seq, actor_name, text). Events may arrive
# before the reply a client is waiting for (SPEC.md §7.4).
messages = []


def note_event(r):
    room, seq, _at, _actor = r.varint(), r.varint(), r.varint(), r.varint()
    actor_name, body_kind = r.string(), r.u8()
    if body_kind == 1:
        messages.append((room, seq, actor_name, r.string()))


async def reply(ws, want_id):
    """The reply to request `want_id`, noting the events that come first."""
    while True:
        kind, req_id, r = split(await ws.recv())
        if kind == CLOSE:
            raise SystemExit(f"server closed: {r.varint()} {r.string()}")
        if kind == EVENT:
            note_event(r)
        elif req_id == want_id:
            return kind, r


async def main(url, username, password, room, text, expect, ca):
    context = None
    if url.startswith("wss://"):
        context = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=context) as ws:
        await ws.send(frame(HELLO, 1, varint(1) + string("py-websockets/1") + b"\x00" + varint(0)))
        kind, r = await reply(ws, 1)
        assert kind == WELCOME, kind
        say(step="welcome", version=r.varint(), server=r.string())

        await ws.send(frame(REGISTER, 2, string(username) + string(password)))
        kind, r = await reply(ws, 2)
        if kind == ERROR and r.varint() == USERNAME_TAKEN:
            await ws.send(frame(LOGIN, 3, string(username) + string(password)))
            kind, r = await reply(ws, 3)
        assert kind == SESSION, kind
        say(step="session", user=r.varint(), username=r.string())

        await ws.send(frame(JOIN_ROOM, 4, varint(room)))
        kind, r = await reply(ws, 4)
        assert kind == ROOM, kind
        say(step="joined", room=room)

        await ws.send(frame(SEND_MESSAGE, 5, varint(room) + string(text)))
        kind, r = await reply(ws, 5)
        assert kind == MESSAGE_ACK, kind
        say(step="sent", room=r.varint(), seq=r.varint())

        while True:
            for ev_room, seq, actor_name, got in messages:
                if ev_room == room and got == expect:
                    say(step="received", seq=seq, actor=actor_name, text=got)
                    return
            kind, req_id, r = split(await ws.recv())
            if kind == EVENT:
                note_event(r)


if __name__ == "__main__":
    args = sys.argv[1:]
    ca = None
    if "--ca" in args:
        i = args.index("--ca")
        ca = args[i + 1]
        del args[i:i + 2]
    url, username, password, room, text, expect = args
    asyncio.run(asyncio.wait_for(main(url, username, password, int(room), text, expect, ca), 10))
