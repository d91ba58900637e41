//! The circuit's part of a breaker's stored form (see
//! [`LocalBreaker::to_bytes`](crate::store::LocalBreaker::to_bytes)).

use super::{Circuit, Lease, Override, RampCredit, State};
use crate::bytes::{Reader, corrupt, put_option, put_u8, put_u32, put_u64};
use crate::error::StoreError;
use crate::time::Timestamp;

impl Circuit {
    /// Appends the circuit's fields to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u8(
            out,
            match self.state {
                State::Closed => 0,
                State::Open => 1,
                State::HalfOpen => 2,
            },
        );
        put_u64(out, self.generation);
        put_u64(out, self.open_until.as_millis());
        put_u64(out, self.open_ms);
        put_u32(out, self.successes);
        put_u64(out, self.next_ticket);
        put_u8(
            out,
            match self.override_mode {
                Override::Auto => 0,
                Override::ForcedOpen => 1,
                Override::ForcedClosed => 2,
            },
        );
        put_option(out, self.override_until.map(Timestamp::as_millis));
        put_option(out, self.ramp_from.map(Timestamp::as_millis));
        put_u64(out, self.ramp_credit.0);
        put_u32(out, u32::try_from(self.probes.len()).unwrap_or(u32::MAX));
        for lease in &self.probes {
            put_u64(out, lease.ticket);
            put_u64(out, lease.until.as_millis());
        }
    }

    /// Reads what [`Circuit::write`] wrote, checking every field.
    pub(crate) fn read(input: &mut Reader<'_>) -> Result<Circuit, StoreError> {
        let state = match input.u8("state")? {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            other => return Err(corrupt(&format!("its state is {other}"))),
        };
        let generation = input.count("generation")?;
        let open_until = Timestamp::from_millis(input.u64("open time")?);
        let open_ms = input.count("open period")?;
        let successes = input.u32("probe successes")?;
        if successes == u32::MAX {
            return Err(corrupt("its probe successes are at their maximum"));
        }
        let next_ticket = input.count("last probe ticket")?;
        let override_mode = match input.u8("override")? {
            0 => Override::Auto,
            1 => Override::ForcedOpen,
            2 => Override::ForcedClosed,
            other => return Err(corrupt(&format!("its override is {other}"))),
        };
        let override_until = input.option("override end")?.map(Timestamp::from_millis);
        let ramp_from = input.option("ramp start")?.map(Timestamp::from_millis);
        let credit = input.u64("ramp credit")?;
        if credit >= 1000 {
            return Err(corrupt(&format!(
                "its ramp credit ({credit}) is 1000 or more"
            )));
        }
        let leases = input.u32("probe count")?;
        // Read one by one, never allocated from the count: a wrong count fails at the end of
        // the bytes rather than asking for memory.
        let mut probes = Vec::new();
        for _ in 0..leases {
            probes.push(Lease {
                ticket: input.count("probe ticket")?,
                until: Timestamp::from_millis(input.u64("probe lease")?),
            });
        }
        Ok(Circuit {
            state,
            generation,
            open_until,
            open_ms,
            successes,
            probes,
            next_ticket,
            override_mode,
            override_until,
            ramp_from,
            ramp_credit: RampCredit(credit),
        })
    }
}
