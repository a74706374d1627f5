#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into fuzz/seeds/TARGET/.

Seeds come from the protocol's test vectors (protocol-spec/vectors/, hex
frames in both directions), wrapped in each target's input layout (see
the doc comment at the top of each fuzz_targets/*.rs), and from requests
a real client sends (a browser's WebSocket upgrade, the API's JSON
bodies). `cargo fuzz run TARGET fuzz/corpus/TARGET fuzz/seeds/TARGET`
reads them; the minimised corpus is what is committed.

Usage: fuzz/seeds.py   (from anywhere)
"""

import glob
import hashlib
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")


def write(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def vectors():
    for path in sorted(glob.glob(os.path.join(ROOT, "protocol-spec/vectors/**/*.json"), recursive=True)):
        with open(path) as f:
            v = json.load(f)
        yield v["direction"], bytes.fromhex(v["hex"])


def ws_client_frame(payload, opcode=0x2, fin=True, mask=b"\x11\x22\x33\x44"):
    out = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        out.append(0x80 | n)
    elif n <= 0xFFFF:
        out.append(0x80 | 126)
        out += struct.pack(">H", n)
    else:
        out.append(0x80 | 127)
        out += struct.pack(">Q", n)
    out += mask
    out += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(out)


UPGRADE = (
    b"GET /ws HTTP/1.1\r\n"
    b"Host: localhost:7480\r\n"
    b"Connection: Upgrade\r\n"
    b"Upgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)
BROWSER = (
    b"GET /ws HTTP/1.1\r\n"
    b"Host: chat.example\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: https://chat.example\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
    b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
)

# (route index in http_api.rs ROUTES, body or query)
HTTP = [
    (0, b'{"username":"alice","password":"secret123"}'),
    (1, b'{"username":"fuzzer","password":"password1"}'),
    (2, b""),
    (3, b"q=room&offset=0&limit=20&exact=false"),
    (4, b'{"name":"general","topic":"anything goes","visibility":"private"}'),
    (5, b""),
    (6, b""),
    (7, b""),
    (8, b"before=10&limit=50"),
    (9, b'{"text":"hello, world"}'),
    (10, b""),
    (11, b'{"name":"renamed","topic":"new topic"}'),
    (12, b'{"username":"bystander"}'),
    (12, b'{"user_id":2}'),
    (13, b""),
    (14, b""),
    (15, b""),
    (16, b""),
    (17, b""),
    (18, b""),
    (19, b""),
    (20, b'{"role":"admin"}'),
    (21, b""),
    (22, b'{"user_id":2}'),
    (23, b""),
    (24, b"before=5&limit=10"),
    (25, b"before=0&limit=20&unread_only=true"),
    (26, b'{"up_to":17}'),
    (27, b""),
    (28, b""),
    (29, b""),
]


def main():
    client = []
    for direction, frame in vectors():
        # frame: default maximum, chunks of 3 bytes.
        write("frame", bytes([0, 2]) + frame)
        if direction == "client_to_server":
            client.append(frame)
            write("request", frame)
            # ws stream mode (0), default maximum, chunks of 7.
            write("ws", bytes([0, 0, 6]) + ws_client_frame(frame))
        else:
            write("server_msg", frame)
    write("frame", bytes([0, 0]) + b"".join(client))
    write("request", b"".join(client))
    # A message in two fragments with a ping between, then a close.
    hello = client[0]
    write("ws", bytes([0, 0, 0]) + ws_client_frame(hello[:5], fin=False)
          + ws_client_frame(b"ping", opcode=0x9)
          + ws_client_frame(hello[5:], opcode=0x0)
          + ws_client_frame(b"\x03\xe8", opcode=0x8))
    # Handshakes: mode 2 (no origins) and 2 | 0x10 (origins configured).
    for mode in (2, 2 | 0x10):
        write("ws", bytes([mode]) + UPGRADE + b"\r\n")
        write("ws", bytes([mode]) + BROWSER + b"\r\n")
    for route, payload in HTTP:
        # dress 0: the fuzzer's token, JSON, its public room, the other user.
        write("http_api", bytes([route, 0]) + bytes(8) + payload)


if __name__ == "__main__":
    main()
