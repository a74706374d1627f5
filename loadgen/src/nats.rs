//! NATS as the comparison target (`nats://HOST:PORT`): the same workloads,
//! schedule and latency accounting against a `nats-server` doing plain
//! core pub/sub, one subject per room.
//!
//! The client protocol (docs.nats.io, "Client Protocol") is text, one
//! operation per `\r\n`-terminated control line; `PUB` and `MSG` lines are
//! followed by their payload and another `\r\n`. This module speaks just
//! what the scenarios need:
//!
//! - set-up of a connection: read the server's `INFO`, then send
//!   `CONNECT` (verbose and pedantic off, so no `+OK` per operation), one
//!   `SUB room.<id> <sid>` per subject and a `PING` in one write, and wait
//!   for the `PONG`: the server handles a connection's operations in
//!   order, so the `PONG` means every subscription is in force. There is
//!   no account or room to create.
//! - publishing: `PUB room.<id> <n>\r\n<payload>\r\n`, written by the
//!   scenarios from a template (see `scenario::fanout`); the payload
//!   starts with the same stamp a Confab message body carries.
//! - receiving: `MSG <subject> <sid> [reply-to] <n>` lines and their
//!   payloads, parsed in place from the same large read buffer as Confab
//!   frames ([`ReadBuf`]): no allocation per message. `PING`s from the
//!   server are counted and answered by the connection's writer before its
//!   next write ([`FrameWriter::nats`]), so a `PONG` never lands inside a
//!   half-written `PUB`; idle connections write every 20 s (keep-alive).
//!
//! The protocol's operation names are case-insensitive and its fields may
//! be separated by runs of spaces or tabs; the parser accepts both.

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use anyhow::{bail, Context};

use crate::clock::now_ns;
use crate::net::{Connector, FrameWriter, ReadBuf, ReadHalf};

/// Longest control line accepted (`INFO` is the long one, ~0.5 KiB).
const MAX_CONTROL_LINE: usize = 64 * 1024;

/// Largest payload accepted (`nats-server` allows 1 MiB by default, 64 MiB
/// at most).
const MAX_PAYLOAD: usize = 64 << 20;

/// The client's options: no `+OK` acknowledgements, no strict checking,
/// our own messages echoed back (a publisher is a member of its room, as
/// in Confab), no headers (so deliveries are `MSG`, never `HMSG`).
const CONNECT: &str = concat!(
    r#"CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"#,
    r#""name":"confab-loadgen","lang":"rust","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#"","protocol":1,"echo":true,"headers":false,"no_responders":false}"#,
    "\r\n"
);

/// The keep-alive written on otherwise silent connections.
pub const PING: &[u8] = b"PING\r\n";

/// The subject of room number `room`.
pub fn subject(room: usize) -> String {
    format!("room.{room}")
}

/// One operation from the server, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Msg {
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    /// The server's complaint, quotes included.
    Err(&'a [u8]),
    /// The JSON object.
    Info(&'a [u8]),
}

/// What starts the unparsed bytes.
#[derive(Debug, PartialEq, Eq)]
enum Parsed<'a> {
    /// Not all buffered; `need` is the whole operation's length when known.
    Partial { need: usize },
    /// A whole operation of `total` bytes.
    Op { op: Op<'a>, total: usize },
}

/// Parses the operation at the start of `b`.
fn parse(b: &[u8]) -> io::Result<Parsed<'_>> {
    let Some(nl) = b.iter().position(|&c| c == b'\n') else {
        if b.len() > MAX_CONTROL_LINE {
            return Err(bad("a NATS control line longer than 64 KiB"));
        }
        return Ok(Parsed::Partial { need: 0 });
    };
    let line = &b[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let name_len = line
        .iter()
        .position(|c| *c == b' ' || *c == b'\t')
        .unwrap_or(line.len());
    let (name, args) = line.split_at(name_len);
    let args = trim(args);
    let op = |op| Ok(Parsed::Op { op, total: nl + 1 });
    if name.eq_ignore_ascii_case(b"MSG") {
        // <subject> <sid> [reply-to] <size>: the last field is the size.
        let (count, last) = args
            .split(|c| *c == b' ' || *c == b'\t')
            .filter(|f| !f.is_empty())
            .fold((0, None), |(n, _), f| (n + 1, Some(f)));
        let size = last
            .filter(|_| count == 3 || count == 4)
            .and_then(parse_size)
            .ok_or_else(|| bad("a NATS MSG line without subject, sid and size"))?;
        if size > MAX_PAYLOAD {
            return Err(bad("a NATS payload larger than 64 MiB"));
        }
        let total = nl + 1 + size + 2;
        if b.len() < total {
            return Ok(Parsed::Partial { need: total });
        }
        if &b[total - 2..total] != b"\r\n" {
            return Err(bad("a NATS payload not followed by CRLF"));
        }
        return Ok(Parsed::Op {
            op: Op::Msg {
                payload: &b[nl + 1..total - 2],
            },
            total,
        });
    }
    if name.eq_ignore_ascii_case(b"PING") {
        op(Op::Ping)
    } else if name.eq_ignore_ascii_case(b"PONG") {
        op(Op::Pong)
    } else if name.eq_ignore_ascii_case(b"+OK") {
        op(Op::Ok)
    } else if name.eq_ignore_ascii_case(b"-ERR") {
        op(Op::Err(args))
    } else if name.eq_ignore_ascii_case(b"INFO") {
        op(Op::Info(args))
    } else {
        // HMSG included: headers were not asked for.
        Err(bad(&format!(
            "unexpected NATS operation {:?}",
            String::from_utf8_lossy(&name[..name.len().min(16)])
        )))
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + (c - b'0') as usize)
    })
}

fn bad(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
}

/// The receiving side of a NATS connection.
pub struct NatsReader {
    rd: ReadHalf,
    rb: ReadBuf,
    /// Server PINGs not answered yet (shared with the connection's writer).
    pongs_owed: Rc<Cell<u32>>,
}

/// An operation the set-up waits for, owned.
#[derive(Debug)]
enum Reply {
    Info(serde_json::Value),
    Pong,
    Err(String),
    Other,
}

impl NatsReader {
    /// Makes room for a read when the buffer is full of a partial
    /// operation (growing it for one larger than the buffer).
    fn prepare_read(&mut self) -> io::Result<()> {
        if self.rb.is_full() {
            let need = match parse(self.rb.data())? {
                Parsed::Partial { need } if need > 0 => need,
                _ => self.rb.data().len() * 2,
            };
            self.rb.make_room(need);
        }
        Ok(())
    }

    /// Reads once (waiting for data) and calls `f` for every whole
    /// operation now buffered, with the time the read returned
    /// ([`now_ns`]). `Ok(false)` at end of stream.
    pub async fn read_ops(&mut self, mut f: impl FnMut(Op<'_>, u64)) -> io::Result<bool> {
        self.prepare_read()?;
        if self.rb.read_from(&mut self.rd).await? == 0 {
            return Ok(false);
        }
        let now = now_ns();
        loop {
            match parse(self.rb.data())? {
                Parsed::Partial { .. } => return Ok(true),
                Parsed::Op { op, total } => {
                    if op == Op::Ping {
                        self.pongs_owed.set(self.pongs_owed.get() + 1);
                    }
                    f(op, now);
                    self.rb.consume(total);
                }
            }
        }
    }

    /// The next operation, owned (set-up only).
    async fn next_reply(&mut self) -> io::Result<Reply> {
        loop {
            if let Parsed::Op { op, total } = parse(self.rb.data())? {
                let reply = match op {
                    Op::Info(json) => Reply::Info(
                        serde_json::from_slice(json)
                            .map_err(|e| bad(&format!("the server's INFO is not JSON: {e}")))?,
                    ),
                    Op::Pong => Reply::Pong,
                    Op::Err(text) => Reply::Err(String::from_utf8_lossy(text).into_owned()),
                    Op::Ping => {
                        self.pongs_owed.set(self.pongs_owed.get() + 1);
                        Reply::Other
                    }
                    Op::Msg { .. } | Op::Ok => Reply::Other,
                };
                self.rb.consume(total);
                return Ok(reply);
            }
            self.prepare_read()?;
            if self.rb.read_from(&mut self.rd).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// A NATS connection, set up.
pub struct Connection {
    pub rd: NatsReader,
    pub wr: FrameWriter,
    /// The server's version, from its INFO.
    pub server_version: String,
}

/// Opens connection number `n` (which picks its source address) with a
/// read buffer of `buf` bytes, subscribed to `subjects` (sids 1, 2, …),
/// once the server has confirmed the subscriptions.
pub async fn open(
    connector: &Connector,
    n: usize,
    buf: usize,
    subjects: &[String],
) -> anyhow::Result<Connection> {
    let (rd, wr) = connector.tcp(n).await?.into_split();
    let pongs_owed = Rc::new(Cell::new(0));
    let mut rd = NatsReader {
        rd: ReadHalf::Tcp(rd),
        rb: ReadBuf::new(buf),
        pongs_owed: pongs_owed.clone(),
    };
    let mut wr = FrameWriter::nats(wr, pongs_owed);
    let info = match rd.next_reply().await.context("reading the server's INFO")? {
        Reply::Info(info) => info,
        other => bail!("expected INFO from nats-server, got {other:?}"),
    };
    for refused in ["tls_required", "auth_required"] {
        if info[refused] == serde_json::Value::Bool(true) {
            bail!("the nats-server says {refused}: the load generator speaks plain NATS without credentials");
        }
    }
    let mut hello = String::with_capacity(CONNECT.len() + 32 * subjects.len() + 8);
    hello.push_str(CONNECT);
    for (i, subject) in subjects.iter().enumerate() {
        hello.push_str(&format!("SUB {subject} {}\r\n", i + 1));
    }
    hello.push_str("PING\r\n");
    wr.write_all(hello.as_bytes()).await?;
    loop {
        match rd.next_reply().await.context("waiting for PONG")? {
            Reply::Pong => break,
            Reply::Err(e) => bail!("nats-server refused the connection: {e}"),
            Reply::Info(_) | Reply::Other => {}
        }
    }
    Ok(Connection {
        rd,
        wr,
        server_version: info["version"].as_str().unwrap_or("unknown").to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn op(b: &[u8]) -> (Op<'_>, usize) {
        match parse(b).expect("valid") {
            Parsed::Op { op, total } => (op, total),
            p => panic!("not whole: {p:?}"),
        }
    }

    #[test]
    fn control_lines_and_messages_are_parsed_in_place() {
        assert_eq!(op(b"PING\r\nrest"), (Op::Ping, 6));
        assert_eq!(op(b"pong\r\n"), (Op::Pong, 6));
        assert_eq!(op(b"+OK\r\n"), (Op::Ok, 5));
        assert_eq!(
            op(b"-ERR 'Slow Consumer'\r\n"),
            (Op::Err(b"'Slow Consumer'"), 22)
        );
        assert_eq!(op(b"INFO {\"a\":1}\r\n"), (Op::Info(b"{\"a\":1}"), 14));
        assert_eq!(
            op(b"MSG room.3 1 5\r\nhello\r\nMSG"),
            (Op::Msg { payload: b"hello" }, 23)
        );
        // A reply subject, tabs and runs of spaces, lower case.
        assert_eq!(
            op(b"msg room.3\t1  _INBOX.x   3\r\nabc\r\n"),
            (Op::Msg { payload: b"abc" }, 33)
        );
        // Empty payload.
        assert_eq!(op(b"MSG a 1 0\r\n\r\n"), (Op::Msg { payload: b"" }, 13));
    }

    #[test]
    fn partial_operations_say_how_much_they_need() {
        assert_eq!(parse(b"MS").unwrap(), Parsed::Partial { need: 0 });
        assert_eq!(
            parse(b"MSG room.1 1 100\r\nxx").unwrap(),
            Parsed::Partial { need: 18 + 100 + 2 }
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        for b in [
            &b"MSG room.1 1\r\n"[..],
            b"MSG room.1 1 x\r\n",
            b"MSG a 1 3\r\nabcXY",
            b"HMSG a 1 3 3\r\n",
            b"BOGUS\r\n",
        ] {
            assert!(parse(b).is_err(), "{:?}", String::from_utf8_lossy(b));
        }
        assert!(parse(&vec![b'x'; MAX_CONTROL_LINE + 1]).is_err());
    }

    /// Messages split at every possible read boundary, in a buffer smaller
    /// than the INFO line; server PINGs become owed PONGs.
    #[tokio::test]
    async fn a_stream_is_parsed_across_reads_and_pings_are_owed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut stream = format!("INFO {{\"pad\":\"{}\"}}\r\n", "p".repeat(200)).into_bytes();
        for i in 0..20 {
            let payload = format!("{i:016x}{}", "x".repeat(i * 7));
            stream.extend(format!("MSG room.{i} 1 {}\r\n{payload}\r\n", payload.len()).bytes());
            if i % 5 == 0 {
                stream.extend(b"PING\r\n");
            }
        }
        let writer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for chunk in stream.chunks(5) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let (rd, _wr) = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap()
            .into_split();
        let owed = Rc::new(Cell::new(0));
        let mut reader = NatsReader {
            rd: ReadHalf::Tcp(rd),
            rb: ReadBuf::new(64),
            pongs_owed: owed.clone(),
        };
        let mut seen = Vec::new();
        while reader
            .read_ops(|op, _| {
                if let Op::Msg { payload } = op {
                    seen.push(crate::stats::parse_stamp(payload).unwrap());
                }
            })
            .await
            .unwrap()
        {}
        writer.await.unwrap();
        assert_eq!(seen, (0..20).collect::<Vec<u64>>());
        assert_eq!(owed.get(), 4);
    }
}
