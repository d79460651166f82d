//! Decoding of PostgreSQL's logical replication protocol as `pgoutput` writes it (protocol
//! version 1): one message per row of `pg_logical_slot_peek_binary_changes`.
//!
//! Message layouts follow "Logical Replication Message Formats" in the PostgreSQL manual.
//! Values arrive as NULL, text, binary (the `binary` option) or "unchanged TOAST" (an UPDATE
//! that did not touch an out-of-line value: the old value stays where it is).

use std::fmt;

use super::wire;

/// A WAL position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    /// Postgres's own spelling: `16/B374D848`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl std::str::FromStr for Lsn {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Lsn, DecodeError> {
        let bad = || DecodeError(format!("not an LSN: {s:?}"));
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
            return Err(bad());
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    /// The value was not sent because it is stored out of line and did not change.
    UnchangedToast,
    /// The type's text output.
    Text(&'a [u8]),
    /// The type's binary send format (as in binary COPY).
    Binary(&'a [u8]),
}

/// A column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the primary key by default).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
}

/// A table as the stream describes it, sent before the first change to it in each session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub schema: String,
    pub name: String,
    /// `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

/// One message of the stream. Tuples borrow from the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Begin {
        /// The LSN of the commit record.
        final_lsn: Lsn,
        /// Microseconds since 2000-01-01 UTC.
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        /// The end of the commit record: where the slot advances to.
        end_lsn: Lsn,
        commit_time: i64,
    },
    Origin {
        lsn: Lsn,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: u32,
        schema: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<Value<'a>>,
    },
    Update {
        relation: u32,
        /// The old key (`K`, the key changed) or the whole old row (`O`, replica identity full).
        old: Option<(OldKind, Vec<Value<'a>>)>,
        new: Vec<Value<'a>>,
    },
    Delete {
        relation: u32,
        old: (OldKind, Vec<Value<'a>>),
    },
    Truncate {
        relations: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
    /// `pg_logical_emit_message`, when the stream asks for messages.
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: &'a [u8],
    },
}

/// Which old tuple an UPDATE or DELETE carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// Only the replica identity columns (others are NULL).
    Key,
    /// Every column (replica identity full).
    Full,
}

pub use super::wire::DecodeError;

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "message ends at byte {} while reading {what} ({n} bytes)",
                    self.b.len()
                ))
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        Ok(wire::read_i16(self.take(2, what)?))
    }
    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(wire::read_i32(self.take(4, what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(self.i32(what)? as u32)
    }
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(wire::read_i64(self.take(8, what)?))
    }
    fn lsn(&mut self, what: &str) -> Result<Lsn, DecodeError> {
        Ok(Lsn(self.i64(what)? as u64))
    }
    /// A NUL-terminated string.
    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let rest = &self.b[self.pos..];
        let n = rest
            .iter()
            .position(|c| *c == 0)
            .ok_or_else(|| DecodeError(format!("{what}: string without its terminating NUL")))?;
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| DecodeError(format!("{what}: not UTF-8")))?
            .to_string();
        self.pos += n + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Value<'a>>, DecodeError> {
        let n = self.i16("tuple column count")?;
        if n < 0 {
            return Err(DecodeError(format!("negative column count {n}")));
        }
        let mut values = Vec::with_capacity(n as usize);
        for i in 0..n {
            let kind = self.u8("value kind")?;
            values.push(match kind {
                b'n' => Value::Null,
                b'u' => Value::UnchangedToast,
                b't' | b'b' => {
                    let len = self.i32("value length")?;
                    if len < 0 {
                        return Err(DecodeError(format!("column {i}: negative length {len}")));
                    }
                    let v = self.take(len as usize, "a value")?;
                    if kind == b't' {
                        Value::Text(v)
                    } else {
                        Value::Binary(v)
                    }
                }
                other => {
                    return Err(DecodeError(format!(
                        "column {i}: unknown value kind {:?}",
                        other as char
                    )))
                }
            });
        }
        Ok(values)
    }

    fn done(&self, what: char) -> Result<(), DecodeError> {
        if self.pos != self.b.len() {
            return Err(DecodeError(format!(
                "{what} message has {} bytes after its end",
                self.b.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// Decodes one pgoutput message.
pub fn decode(b: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader { b, pos: 0 };
    let tag = r.u8("message type")?;
    let msg = match tag {
        b'B' => Message::Begin {
            final_lsn: r.lsn("final LSN")?,
            commit_time: r.i64("commit time")?,
            xid: r.u32("xid")?,
        },
        b'C' => {
            let _flags = r.u8("flags")?;
            Message::Commit {
                commit_lsn: r.lsn("commit LSN")?,
                end_lsn: r.lsn("end LSN")?,
                commit_time: r.i64("commit time")?,
            }
        }
        b'O' => Message::Origin {
            lsn: r.lsn("origin LSN")?,
            name: r.string("origin name")?,
        },
        b'R' => {
            let id = r.u32("relation id")?;
            let schema = r.string("namespace")?;
            let name = r.string("relation name")?;
            let replica_identity = r.u8("replica identity")?;
            let n = r.i16("column count")?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                columns.push(RelationColumn {
                    key: r.u8("column flags")? & 1 == 1,
                    name: r.string("column name")?,
                    type_oid: r.u32("type oid")?,
                    typmod: r.i32("type modifier")?,
                });
            }
            Message::Relation(Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32("type oid")?,
            schema: r.string("type namespace")?,
            name: r.string("type name")?,
        },
        b'I' => {
            let relation = r.u32("relation id")?;
            match r.u8("tuple marker")? {
                b'N' => Message::Insert {
                    relation,
                    new: r.tuple()?,
                },
                m => {
                    return Err(DecodeError(format!(
                        "insert: expected N, got {:?}",
                        m as char
                    )))
                }
            }
        }
        b'U' => {
            let relation = r.u32("relation id")?;
            let mut marker = r.u8("tuple marker")?;
            let mut old = None;
            if marker == b'K' || marker == b'O' {
                let kind = if marker == b'K' {
                    OldKind::Key
                } else {
                    OldKind::Full
                };
                old = Some((kind, r.tuple()?));
                marker = r.u8("tuple marker")?;
            }
            if marker != b'N' {
                return Err(DecodeError(format!(
                    "update: expected N, got {:?}",
                    marker as char
                )));
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32("relation id")?;
            let kind = match r.u8("tuple marker")? {
                b'K' => OldKind::Key,
                b'O' => OldKind::Full,
                m => {
                    return Err(DecodeError(format!(
                        "delete: expected K or O, got {:?}",
                        m as char
                    )))
                }
            };
            Message::Delete {
                relation,
                old: (kind, r.tuple()?),
            }
        }
        b'T' => {
            let n = r.i32("relation count")?;
            let options = r.u8("truncate options")?;
            let mut relations = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                relations.push(r.u32("relation id")?);
            }
            Message::Truncate {
                relations,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
            }
        }
        b'M' => {
            let flags = r.u8("flags")?;
            let lsn = r.lsn("message LSN")?;
            let prefix = r.string("prefix")?;
            let len = r.i32("content length")?;
            if len < 0 {
                return Err(DecodeError(format!("message: negative length {len}")));
            }
            Message::Message {
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content: r.take(len as usize, "message content")?,
            }
        }
        other => {
            return Err(DecodeError(format!(
                "unknown message type {:?} (0x{other:02x})",
                other as char
            )))
        }
    };
    r.done(tag as char)?;
    Ok(msg)
}

#[cfg(test)]
pub(crate) mod encode;

#[cfg(test)]
mod tests;
