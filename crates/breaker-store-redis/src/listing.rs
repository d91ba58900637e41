//! Reading many breakers per round trip, for operators' tools (the dashboard, metrics): the
//! registry once, then each breaker's policies and state in pipelines of many breakers.
//!
//! Nothing here registers a breaker or extends a key's life, and no script runs: a listing
//! reads the stored fields with plain commands and decides in Rust by the script's rules
//! (`stored.rs`). A breaker that cannot be read is listed as such, with its error, and the
//! others are listed as usual.
//!
//! In a Redis Cluster a pipeline must stay in one slot, and every breaker has a slot of its
//! own, so there each breaker is read on its own, many at a time over the one connection.

use std::collections::HashMap;
use std::time::Duration;

use breaker_core::{Bucket, HistoryEntry, StoreError, StoreErrorKind, Timestamp};
use futures_util::StreamExt;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Value};

use crate::asynchronous::{AsyncRedisStore, Connection};
use crate::error::store_error;
use crate::history;
use crate::keys::Keys;
use crate::registry::{self, BreakerInfo, Found};
use crate::stored::{self, Needed, Stored};

/// Breakers whose policies and state one pipeline reads (and then their buckets): each
/// pipeline must answer within the store's timeout.
const BREAKERS_PER_TRIP: usize = 1_000;
/// History streams one pipeline reads from.
const STREAMS_PER_TRIP: usize = 1_000;
/// Breakers read at once in a Cluster, each on its own.
const CLUSTER_CONCURRENCY: usize = 64;

/// What a listing reads: every registered breaker or only some, with or without their
/// windows' buckets.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ListRequest {
    names: Option<Vec<String>>,
    windows: bool,
    windows_up_to: Option<usize>,
    reuse_policies: Duration,
}

impl ListRequest {
    /// Every registered breaker, without windows.
    pub fn all() -> ListRequest {
        ListRequest::default()
    }

    /// Only the breakers named (those registered).
    pub fn names(names: impl IntoIterator<Item = impl Into<String>>) -> ListRequest {
        ListRequest {
            names: Some(names.into_iter().map(Into::into).collect()),
            windows: false,
            windows_up_to: None,
            reuse_policies: Duration::ZERO,
        }
    }

    /// Also reads each breaker's window: its live buckets, oldest first.
    #[must_use]
    pub fn windows(mut self, windows: bool) -> ListRequest {
        self.windows = windows;
        self
    }

    /// Reuses the policies an earlier listing of this store read within `fresh_for`, instead
    /// of reading them again: policies change rarely, and they are most of what a listing
    /// reads (and decodes) of a breaker. A policy a process registers meanwhile (a conflict),
    /// and last-seen times, then show up to `fresh_for` late. Default: read every time.
    #[must_use]
    pub fn reuse_policies(mut self, fresh_for: Duration) -> ListRequest {
        self.reuse_policies = fresh_for;
        self
    }

    /// Reads the windows only when the listing holds at most `breakers` breakers: a window
    /// costs Redis every bucket of the breaker, a page that shows a few breakers draws them,
    /// and one of thousands shows a table.
    #[must_use]
    pub fn windows_up_to(mut self, breakers: usize) -> ListRequest {
        self.windows = true;
        self.windows_up_to = Some(breakers);
        self
    }
}

/// The answer to a listing: the breakers in the order of their names' bytes, and how many
/// round trips to Redis it took.
#[derive(Debug)]
#[non_exhaustive]
pub struct Listing {
    /// Every breaker listed, readable or not.
    pub breakers: Vec<Listed>,
    /// Requests sent to Redis (a pipeline counts once).
    pub round_trips: usize,
}

/// One breaker of a [`Listing`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Listed {
    /// The breaker's name.
    pub name: String,
    /// When a process first registered it.
    pub first_seen: Timestamp,
    /// What was read of it, or why it could not be read.
    pub info: Result<BreakerInfo, StoreError>,
    /// Its window's live buckets, oldest first, when asked for and readable.
    pub window: Option<Vec<Bucket>>,
}

/// One breaker on its way through a listing.
struct Reading {
    name: String,
    first_seen: Timestamp,
    /// Its policies and last-seen time, once read.
    read: Option<Result<Found, StoreError>>,
    /// Its stored state, once read, while its buckets are still to be read.
    stored: Option<Stored>,
    snapshot: Option<Result<breaker_core::Snapshot, StoreError>>,
    window: Option<Vec<Bucket>>,
}

impl Reading {
    /// Takes the reply to [`state_fields`]: the snapshot when it needs no bucket, else the
    /// state kept for the bucket fields it returns.
    fn take_state(&mut self, now: Timestamp, windows: bool, reply: Value) -> Vec<String> {
        let Some(Ok((policy, _, _))) = &self.read else {
            return Vec::new();
        };
        let decoded = read::<Vec<Option<Vec<u8>>>>(reply, "a breaker's state")
            .and_then(|fields| stored::decode(&self.name, &fields));
        match decoded {
            Err(err) => self.snapshot = Some(Err(err)),
            Ok(None) => {
                self.snapshot = Some(Ok(stored::new_breaker()));
                if windows {
                    self.window = Some(Vec::new());
                }
            }
            Ok(Some(state)) => {
                let needed = if windows {
                    Needed::All
                } else {
                    state.needed(now, policy)
                };
                if needed == Needed::Nothing {
                    self.snapshot = state
                        .snapshot(&self.name, now, policy, &needed, &[])
                        .transpose();
                } else {
                    self.stored = Some(state);
                    return needed.fields(u64::from(policy.buckets()));
                }
            }
        }
        Vec::new()
    }

    /// Takes the values of the bucket fields [`Reading::take_state`] asked for: the buckets
    /// that left the window (then, if the totals must be counted again, the state is kept
    /// for a read of every bucket), or every bucket.
    fn take_buckets(&mut self, now: Timestamp, windows: bool, reply: Value) {
        let (Some(state), Some(Ok((policy, _, _)))) = (self.stored.take(), &self.read) else {
            return;
        };
        let values = match read::<Vec<Option<Vec<u8>>>>(reply, "a breaker's window") {
            Ok(values) => values,
            Err(err) => {
                self.snapshot = Some(Err(err));
                return;
            }
        };
        match state.snapshot_from_buckets(&self.name, now, policy, &values) {
            Ok(Some(snapshot)) => self.snapshot = Some(Ok(snapshot)),
            Ok(None) => {
                self.stored = Some(state);
                return;
            }
            Err(err) => self.snapshot = Some(Err(err)),
        }
        if windows && values.len() >= 3 * policy.buckets() as usize {
            self.window = Some(stored::window(now, policy, &values));
        }
    }

    /// Every bucket field, when the state is still waiting for them (the totals must be
    /// counted again).
    fn every_bucket(&self) -> Option<Vec<String>> {
        let (Some(_), Some(Ok((policy, _, _)))) = (&self.stored, &self.read) else {
            return None;
        };
        Some(Needed::All.fields(u64::from(policy.buckets())))
    }
}

/// The command that reads a breaker's stored state (`stored::FIELDS`).
fn state_fields(keys: &Keys) -> Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(&keys.state).arg(&stored::FIELDS[..]);
    cmd
}

/// The command that reads `fields` of a breaker's hash.
fn bucket_fields(keys: &Keys, fields: &[String]) -> Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(&keys.state).arg(fields);
    cmd
}

impl Reading {
    fn finish(self) -> Option<Listed> {
        let info = match self.read? {
            Err(err) => Err(err),
            Ok((_, policies, last_seen)) => match self.snapshot {
                Some(Ok(snapshot)) => Ok(BreakerInfo {
                    name: self.name.clone(),
                    first_seen: self.first_seen,
                    last_seen,
                    policies,
                    snapshot,
                }),
                Some(Err(err)) => Err(err),
                None => Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "the breaker's state was not read",
                )),
            },
        };
        Some(Listed {
            name: self.name,
            first_seen: self.first_seen,
            window: if info.is_ok() { self.window } else { None },
            info,
        })
    }
}

/// A reply of one command of a pipeline read as `T`; an error reply or another shape is this
/// breaker's error alone.
fn read<T: FromRedisValue>(reply: Value, what: &str) -> Result<T, StoreError> {
    if let Value::ServerError(err) = reply {
        return Err(store_error(err.into()));
    }
    redis::from_redis_value(reply).map_err(|err| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("unexpected reply from redis ({what}): {err}"),
        )
    })
}

/// The breaker's policies as the registry holds them, or `None` when it has none (its keys
/// expired: not listed). Policies that do not parse make the breaker unreadable only when
/// none parses.
fn policies_of(name: &str, reply: Value) -> Option<Result<Found, StoreError>> {
    let raw = match read::<HashMap<String, String>>(reply, "policies") {
        Ok(raw) => raw,
        Err(err) => return Some(Err(err)),
    };
    if raw.is_empty() {
        return None;
    }
    let (policies, last_seen) = registry::parse_policies(raw);
    let Some(policy) = policies.first().cloned() else {
        return Some(Err(StoreError::new(
            StoreErrorKind::Corrupt,
            format!("no policy of breaker {name:?} can be read"),
        )));
    };
    Some(Ok((policy, policies, last_seen)))
}

impl AsyncRedisStore {
    /// Reads the breakers `request` asks for, many per round trip (pipelined), without
    /// registering any or extending any key's life. A breaker that cannot be read (garbage in
    /// its keys, policies that do not parse) is listed with its error; the listing fails only
    /// when the registry cannot be read or Redis does not answer. Breakers whose keys have
    /// expired are left out (registration prunes them from the registry).
    pub async fn list_many(&self, request: &ListRequest) -> Result<Listing, StoreError> {
        let settings = self.settings();
        let mut round_trips = 1;
        let registry: HashMap<String, String> = self
            .request("reading the registry", |mut connection| async move {
                registry::names(&settings.prefix)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let mut names = registry::parse_names(registry);
        if let Some(wanted) = &request.names {
            names.retain(|(name, _)| wanted.contains(name));
        }
        let mut readings: Vec<Reading> = names
            .into_iter()
            .map(|(name, first_seen)| Reading {
                name,
                first_seen,
                read: None,
                stored: None,
                snapshot: None,
                window: None,
            })
            .collect();
        let windows = request.windows
            && request
                .windows_up_to
                .is_none_or(|most| readings.len() <= most);
        if readings.is_empty() {
            return Ok(Listing {
                breakers: Vec::new(),
                round_trips,
            });
        }
        // The store's clock, as the script would read it.
        let now = if settings.inject_time {
            settings.clock.now()
        } else {
            round_trips += 1;
            stored::server_time(
                self.command("reading the server's time", redis::cmd("TIME"))
                    .await?,
            )?
        };
        let reuse = request.reuse_policies;
        if self.is_cluster().await {
            round_trips += self.read_each(&mut readings, now, windows, reuse).await;
        } else {
            round_trips += self
                .read_pipelined(&mut readings, now, windows, reuse)
                .await?;
        }
        if !reuse.is_zero() && request.names.is_none() {
            self.known_policies()
                .keep_only(readings.iter().map(|reading| reading.name.as_str()));
        }
        Ok(Listing {
            breakers: readings.into_iter().filter_map(Reading::finish).collect(),
            round_trips,
        })
    }

    async fn is_cluster(&self) -> bool {
        self.request("connecting", |connection| async move {
            Ok(matches!(connection, Connection::Cluster(_)))
        })
        .await
        .unwrap_or(false)
    }

    /// Standalone and Sentinel: pipelines of many breakers, each reading their policies and
    /// state, then the buckets those need (and rarely, every bucket of a few). Returns the
    /// round trips.
    async fn read_pipelined(
        &self,
        readings: &mut [Reading],
        now: Timestamp,
        windows: bool,
        reuse: Duration,
    ) -> Result<usize, StoreError> {
        let settings = self.settings();
        let mut round_trips = 0;
        for chunk in readings.chunks_mut(BREAKERS_PER_TRIP) {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for reading in chunk.iter_mut() {
                let keys = Keys::new(&settings.prefix, &reading.name);
                reading.read = self.reused_policies(&reading.name, reuse);
                if reading.read.is_none() {
                    pipe.hgetall(&keys.policies);
                }
                pipe.add_command(state_fields(&keys));
            }
            let mut replies = self
                .pipeline("reading breakers' policies and states", pipe)
                .await?
                .into_iter();
            round_trips += 1;
            let mut wanted = Vec::new();
            for (i, reading) in chunk.iter_mut().enumerate() {
                if reading.read.is_none() {
                    let policies = replies.next().unwrap_or(Value::Nil);
                    reading.read = self.read_policies(&reading.name, policies, reuse);
                }
                let state = replies.next().unwrap_or(Value::Nil);
                let fields = reading.take_state(now, windows, state);
                if !fields.is_empty() {
                    wanted.push((i, fields));
                }
            }
            for pass in 0..2 {
                if wanted.is_empty() {
                    break;
                }
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for (i, fields) in &wanted {
                    let keys = Keys::new(&settings.prefix, &chunk[*i].name);
                    pipe.add_command(bucket_fields(&keys, fields));
                }
                let replies = self.pipeline("reading breakers' windows", pipe).await?;
                round_trips += 1;
                for ((i, _), reply) in wanted.iter().zip(replies) {
                    chunk[*i].take_buckets(now, windows, reply);
                }
                // Those whose totals must be counted again, once.
                wanted = if pass == 0 {
                    wanted
                        .iter()
                        .filter_map(|(i, _)| Some((*i, chunk[*i].every_bucket()?)))
                        .collect()
                } else {
                    Vec::new()
                };
            }
        }
        Ok(round_trips)
    }

    /// A Cluster: each breaker on its own, many at a time. Returns the round trips.
    async fn read_each(
        &self,
        readings: &mut [Reading],
        now: Timestamp,
        windows: bool,
        reuse: Duration,
    ) -> usize {
        let taken: Vec<Reading> = readings
            .iter_mut()
            .map(|reading| Reading {
                name: std::mem::take(&mut reading.name),
                first_seen: reading.first_seen,
                read: None,
                stored: None,
                snapshot: None,
                window: None,
            })
            .collect();
        let read = futures_util::stream::iter(taken)
            .map(|reading| self.read_one(reading, now, windows, reuse))
            .buffered(CLUSTER_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut round_trips = 0;
        for (reading, (read, trips)) in readings.iter_mut().zip(read) {
            *reading = read;
            round_trips += trips;
        }
        round_trips
    }

    /// One breaker, read on its own (its keys share one slot): its policies and state in one
    /// pipeline, then the buckets it needs. Returns it with the round trips it took.
    async fn read_one(
        &self,
        mut reading: Reading,
        now: Timestamp,
        windows: bool,
        reuse: Duration,
    ) -> (Reading, usize) {
        let settings = self.settings();
        let keys = Keys::new(&settings.prefix, &reading.name);
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        reading.read = self.reused_policies(&reading.name, reuse);
        if reading.read.is_none() {
            pipe.hgetall(&keys.policies);
        }
        pipe.add_command(state_fields(&keys));
        let replies = match self.pipeline("reading a breaker", pipe).await {
            Ok(replies) => replies,
            Err(err) => {
                reading.read = Some(Err(err));
                return (reading, 1);
            }
        };
        let mut replies = replies.into_iter();
        if reading.read.is_none() {
            let policies = replies.next().unwrap_or(Value::Nil);
            reading.read = self.read_policies(&reading.name, policies, reuse);
        }
        let mut fields = reading.take_state(now, windows, replies.next().unwrap_or(Value::Nil));
        let mut trips = 1;
        while !fields.is_empty() && trips < 3 {
            let reply = self
                .command("reading a breaker's window", bucket_fields(&keys, &fields))
                .await;
            trips += 1;
            match reply {
                Ok(reply) => reading.take_buckets(now, windows, reply),
                Err(err) => {
                    reading.stored = None;
                    reading.snapshot = Some(Err(err));
                }
            }
            fields = reading.every_bucket().unwrap_or_default();
        }
        (reading, trips)
    }

    /// `name`'s policies as an earlier listing read them, when `reuse` allows.
    fn reused_policies(&self, name: &str, reuse: Duration) -> Option<Result<Found, StoreError>> {
        if reuse.is_zero() {
            return None;
        }
        self.known_policies().fresh(name, reuse).map(Ok)
    }

    /// `name`'s policies from `reply`, kept for later listings when `reuse` asks.
    fn read_policies(
        &self,
        name: &str,
        reply: Value,
        reuse: Duration,
    ) -> Option<Result<Found, StoreError>> {
        let read = policies_of(name, reply);
        if let (Some(Ok(found)), false) = (&read, reuse.is_zero()) {
            self.known_policies().remember(name, found);
        }
        read
    }

    /// Sends one command.
    async fn command(&self, what: &str, cmd: Cmd) -> Result<Value, StoreError> {
        self.request(what, |mut connection| async move {
            cmd.query_async::<Value>(&mut connection).await
        })
        .await
    }

    /// Sends `pipe`, whose commands' errors come back as values.
    async fn pipeline(&self, what: &str, pipe: Pipeline) -> Result<Vec<Value>, StoreError> {
        self.request(what, |mut connection| async move {
            let replies: RedisResult<Vec<Value>> = pipe.query_async(&mut connection).await;
            replies
        })
        .await
    }

    /// The newest `count` entries of every registered breaker's history merged, newest
    /// first, and the round trips it took. Each stream is read a page at a time, newest
    /// first, and only as far as its entries can still be among the newest `count`: a
    /// thousand breakers with long histories cost about one page each, not `count` entries
    /// each. Assumes each stream's entries are in time order, as the script writes them.
    pub async fn history_merged(
        &self,
        count: usize,
    ) -> Result<(Vec<HistoryEntry>, usize), StoreError> {
        history::check_count(count)?;
        let settings = self.settings();
        let registry: HashMap<String, String> = self
            .request("reading the registry", |mut connection| async move {
                registry::names(&settings.prefix)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let mut round_trips = 1;
        let cluster = self.is_cluster().await;
        let mut streams: Vec<Stream> = registry::parse_names(registry)
            .into_iter()
            .map(|(name, _)| Stream {
                key: Keys::new(&settings.prefix, &name).history,
                name,
                cursor: None,
                oldest: None,
                done: false,
            })
            .collect();
        let mut page = first_page(count, streams.len());
        let mut entries: Vec<HistoryEntry> = Vec::new();
        loop {
            let active: Vec<&mut Stream> = streams.iter_mut().filter(|s| !s.done).collect();
            if active.is_empty() {
                break;
            }
            let trips = if cluster {
                self.read_pages_each(active, page, &mut entries).await?
            } else {
                self.read_pages_pipelined(active, page, &mut entries)
                    .await?
            };
            round_trips += trips;
            entries = history::merge(entries, count);
            if entries.len() >= count {
                let threshold = entries[count - 1].at;
                for stream in streams.iter_mut().filter(|s| !s.done) {
                    // Entries after the last one read are older still.
                    if stream.oldest.is_some_and(|oldest| oldest < threshold) {
                        stream.done = true;
                    }
                }
            }
            page = (page * 2).min(count.max(1));
        }
        Ok((entries, round_trips))
    }

    async fn read_pages_pipelined(
        &self,
        active: Vec<&mut Stream>,
        page: usize,
        entries: &mut Vec<HistoryEntry>,
    ) -> Result<usize, StoreError> {
        let mut trips = 0;
        let mut active = active.into_iter().peekable();
        while active.peek().is_some() {
            let mut chunk: Vec<&mut Stream> = active.by_ref().take(STREAMS_PER_TRIP).collect();
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for stream in &chunk {
                pipe.add_command(stream.page(page));
            }
            let replies = self.pipeline("reading breakers' history", pipe).await?;
            trips += 1;
            for (stream, reply) in chunk.iter_mut().zip(replies) {
                stream.take(reply, page, entries);
            }
        }
        Ok(trips)
    }

    async fn read_pages_each(
        &self,
        active: Vec<&mut Stream>,
        page: usize,
        entries: &mut Vec<HistoryEntry>,
    ) -> Result<usize, StoreError> {
        let commands: Vec<Cmd> = active.iter().map(|stream| stream.page(page)).collect();
        let replies = futures_util::stream::iter(commands)
            .map(|cmd| self.command("reading a breaker's history", cmd))
            .buffered(CLUSTER_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let trips = replies.len();
        for (stream, reply) in active.into_iter().zip(replies) {
            stream.take(reply?, page, entries);
        }
        Ok(trips)
    }
}

/// One breaker's history stream, read a page at a time from the newest entry.
struct Stream {
    name: String,
    key: String,
    /// The ID of the last entry read.
    cursor: Option<String>,
    /// The time of the oldest entry read so far.
    oldest: Option<Timestamp>,
    done: bool,
}

impl Stream {
    /// The next `page` entries, older than those read.
    fn page(&self, page: usize) -> Cmd {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.key);
        match &self.cursor {
            Some(id) => cmd.arg(format!("({id}")),
            None => cmd.arg("+"),
        };
        cmd.arg("-").arg("COUNT").arg(page);
        cmd
    }

    /// Takes a page's reply. A stream that cannot be read (garbage in its key) adds nothing:
    /// the other breakers' history is still shown.
    fn take(&mut self, reply: Value, page: usize, entries: &mut Vec<HistoryEntry>) {
        let Ok(raw) = read::<Vec<(String, Vec<String>)>>(reply, "history") else {
            self.done = true;
            return;
        };
        if raw.len() < page {
            self.done = true;
        }
        self.cursor = raw.last().map(|(id, _)| id.clone());
        let parsed = history::parse(&self.name, raw);
        if let Some(last) = parsed.last() {
            self.oldest = Some(last.at);
        }
        entries.extend(parsed);
    }
}

/// The first page read from each stream: enough that, were the entries spread evenly, one
/// page each would hold the newest `count`.
fn first_page(count: usize, streams: usize) -> usize {
    count.div_ceil(streams.max(1)).max(4).min(count.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_page_shares_the_count_between_streams() {
        assert_eq!(first_page(200, 500), 4);
        assert_eq!(first_page(200, 10), 20);
        assert_eq!(first_page(2, 10), 2);
        assert_eq!(first_page(200, 0), 200);
    }

    #[test]
    fn a_page_continues_after_the_last_entry_read() {
        let mut stream = Stream {
            name: "a".to_owned(),
            key: "k".to_owned(),
            cursor: None,
            oldest: None,
            done: false,
        };
        let entry = |id: &str, at: &str| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(
                    ["at", at, "event", "tripped"]
                        .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                        .to_vec(),
                ),
            ])
        };
        let mut entries = Vec::new();
        stream.take(
            Value::Array(vec![entry("5-0", "50"), entry("4-0", "40")]),
            2,
            &mut entries,
        );
        assert_eq!(entries.len(), 2);
        assert!(!stream.done);
        assert_eq!(stream.oldest, Some(Timestamp::from_millis(40)));
        let packed = String::from_utf8_lossy(&stream.page(2).get_packed_command()).into_owned();
        assert!(packed.contains("(4-0"), "{packed}");
        stream.take(Value::Array(vec![entry("3-0", "30")]), 2, &mut entries);
        assert!(stream.done, "a short page is the stream's end");
        let mut garbage = Vec::new();
        let mut other = Stream {
            done: false,
            ..stream
        };
        other.take(Value::Int(3), 2, &mut garbage);
        assert!(other.done && garbage.is_empty());
    }
}
