//! Builds messages byte by byte, as pgoutput does, for tests.

pub struct Msg(pub Vec<u8>);

impl Msg {
    pub fn new(tag: u8) -> Msg {
        Msg(vec![tag])
    }
    pub fn u8(mut self, v: u8) -> Msg {
        self.0.push(v);
        self
    }
    pub fn i16(mut self, v: i16) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(mut self, v: i32) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(mut self, v: i64) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn s(mut self, v: &str) -> Msg {
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        self
    }
    /// A tuple of (kind, bytes) values.
    pub fn tuple(mut self, values: &[(u8, &[u8])]) -> Msg {
        self = self.i16(values.len() as i16);
        for (k, v) in values {
            self = self.u8(*k);
            if *k == b't' || *k == b'b' {
                self = self.i32(v.len() as i32);
                self.0.extend_from_slice(v);
            }
        }
        self
    }
}
