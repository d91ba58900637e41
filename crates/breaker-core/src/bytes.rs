//! The numbers of a breaker's stored form (see
//! [`LocalBreaker::to_bytes`](crate::store::LocalBreaker::to_bytes)): fixed-width little-endian,
//! read back with every check, so that bytes a store holds never make the core panic.

use crate::error::{StoreError, StoreErrorKind};

/// The largest count or sequence number a stored state may hold. Every store keeps its numbers
/// below 2^53 (a Lua script's are doubles), and the core's arithmetic on such numbers never
/// overflows.
pub(crate) const MAX_COUNT: u64 = (1 << 53) - 1;

/// Appends a byte.
pub(crate) fn put_u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

/// Appends a `u32`.
pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a `u64`.
pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends an optional `u64`: a byte saying whether it is there, then the number if it is.
pub(crate) fn put_option(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(value) => {
            put_u8(out, 1);
            put_u64(out, value);
        }
        None => put_u8(out, 0),
    }
}

/// The stored form is not one the core wrote.
pub(crate) fn corrupt(why: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!("the stored breaker state is not valid: {why}"),
    )
}

/// Reads a stored form from its start; each read names what it reads, for the error.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], StoreError> {
        let Some((head, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(corrupt(&format!("it ends before its {what}")));
        };
        self.rest = rest;
        Ok(*head)
    }

    /// A byte.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, StoreError> {
        Ok(self.take::<1>(what)?[0])
    }

    /// A `u32`.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.take(what)?))
    }

    /// A `u64` (a time: any value).
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.take(what)?))
    }

    /// A count or sequence number: at most [`MAX_COUNT`].
    pub(crate) fn count(&mut self, what: &str) -> Result<u64, StoreError> {
        let value = self.u64(what)?;
        if value > MAX_COUNT {
            return Err(corrupt(&format!("its {what} ({value}) is above 2^53")));
        }
        Ok(value)
    }

    /// An optional `u64`, as [`put_option`] wrote it.
    pub(crate) fn option(&mut self, what: &str) -> Result<Option<u64>, StoreError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => self.u64(what).map(Some),
            other => Err(corrupt(&format!(
                "its {what} is marked {other}, not 0 or 1"
            ))),
        }
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(corrupt(&format!(
                "{} bytes follow its end",
                self.rest.len()
            )))
        }
    }
}
