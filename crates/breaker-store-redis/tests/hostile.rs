//! Hostile stored data against a real `redis-server`: whatever bytes or key types a
//! breaker's keys hold (huge values included), no script call costs Redis more than a bound,
//! so every other client keeps its answers in milliseconds; calls follow the failure policy
//! or a repaired state; reads never write; the value is repaired and the repair reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use breaker_core::{
    Action, BlockingBreaker, BlockingOperate, Clock, EventKind, Listeners, ManualClock, Outcome,
    Policy, RejectReason, StoreErrorKind, StoreFailurePolicy, Timestamp,
};
use breaker_store_redis::{BlockingRedisStore, RedisConfig};
use breaker_testkit::redis_server::RedisServer;
use proptest::prelude::*;

/// The bound this test holds every command to: Redis logs any command that runs longer
/// (`slowlog-log-slower-than`, in microseconds), and a logged command fails the case.
const SLOWEST_COMMAND_US: u64 = 20_000;
/// The longest another client may wait for a `PING` meanwhile.
const SLOWEST_PING: Duration = Duration::from_millis(100);

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let threshold = SLOWEST_COMMAND_US.to_string();
        RedisServer::start_with(&["--slowlog-log-slower-than", &threshold])
    })
}

fn connection() -> redis::Connection {
    redis::Client::open(server().url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("hostile{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Where the garbage goes.
#[derive(Clone, Debug)]
enum Target {
    /// A field of the breaker's hash: `s`, `x`, `pr` or `rp`.
    Field(&'static str),
    /// The tag, calls or failures (`t`, `c`, `f`) of the current bucket's slot.
    CurrentBucket(char),
    /// The same of another slot (read when the window moves past it).
    OtherBucket(char),
    /// The whole hash replaced by a key of another type.
    HashKeyType(&'static str),
    /// The history stream replaced by a key of another type.
    HistoryKeyType(&'static str),
}

fn targets() -> impl Strategy<Value = Target> {
    prop_oneof![
        prop::sample::select(vec!["s", "x", "pr", "rp"]).prop_map(Target::Field),
        prop::sample::select(vec!['t', 'c', 'f']).prop_map(Target::CurrentBucket),
        prop::sample::select(vec!['t', 'c', 'f']).prop_map(Target::OtherBucket),
        prop::sample::select(vec!["string", "list", "set"]).prop_map(Target::HashKeyType),
        prop::sample::select(vec!["string", "list", "set"]).prop_map(Target::HistoryKeyType),
    ]
}

/// Bytes no field can read as a valid value: random bytes between two `z`s (no number,
/// no list entry parses), or a long run of one byte (40 KB or 1 MB; a run of digits is longer
/// than any whole number a field holds).
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..30).prop_map(|bytes| {
            let mut value = vec![b'z'];
            value.extend(bytes);
            value.push(b'z');
            value
        }),
        (
            prop::sample::select(vec![b'A', b'1', b':', b',', b'z']),
            prop::sample::select(vec![40_000_usize, 1_000_000]),
        )
            .prop_map(|(byte, len)| vec![byte; len]),
    ]
}

/// Keeps asking Redis for `PING` on a connection of its own until stopped; the slowest answer.
struct Pinger {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Duration, u64)>,
}

impl Pinger {
    fn start() -> Pinger {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let mut conn = connection();
        let thread = std::thread::spawn(move || {
            let (mut slowest, mut pings) = (Duration::ZERO, 0);
            while !stopped.load(Ordering::SeqCst) {
                let started = Instant::now();
                let _: String = redis::cmd("PING").query(&mut conn).unwrap();
                slowest = slowest.max(started.elapsed());
                pings += 1;
                // Paces the pings: about one a millisecond.
                std::thread::sleep(Duration::from_millis(1));
            }
            (slowest, pings)
        });
        Pinger { stop, thread }
    }

    fn stop(self) -> (Duration, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

fn corrupt_reports() -> (Listeners, Arc<Mutex<u64>>) {
    let count = Arc::new(Mutex::new(0));
    let counted = count.clone();
    let listeners = Listeners::new().with(move |event: &breaker_core::Event<'_>| {
        if let EventKind::StoreError(err) = event.kind {
            if err.kind() == StoreErrorKind::Corrupt {
                *counted.lock().unwrap() += 1;
            }
        }
    });
    (listeners, count)
}

fn write_garbage(
    conn: &mut redis::Connection,
    key: &str,
    history: &str,
    target: &Target,
    value: &[u8],
    slot: u64,
) {
    let buckets = 60;
    let kind_of = |kind: &str, key: &str, conn: &mut redis::Connection| {
        let _: () = redis::cmd("DEL").arg(key).query(conn).unwrap();
        let command = match kind {
            "string" => "SET",
            "list" => "RPUSH",
            _ => "SADD",
        };
        let _: () = redis::cmd(command).arg(key).arg(value).query(conn).unwrap();
    };
    match target {
        Target::Field(field) => {
            let _: () = redis::cmd("HSET")
                .arg(key)
                .arg(*field)
                .arg(value)
                .query(conn)
                .unwrap();
        }
        Target::CurrentBucket(part) => {
            let field = format!("{part}{slot}");
            let _: () = redis::cmd("HSET")
                .arg(key)
                .arg(field)
                .arg(value)
                .query(conn)
                .unwrap();
        }
        Target::OtherBucket(part) => {
            let field = format!("{part}{}", (slot + 1) % buckets);
            let _: () = redis::cmd("HSET")
                .arg(key)
                .arg(field)
                .arg(value)
                .query(conn)
                .unwrap();
        }
        Target::HashKeyType(kind) => kind_of(kind, key, conn),
        Target::HistoryKeyType(kind) => kind_of(kind, history, conn),
    }
}

/// Every value of the breaker's hash is short again, and its keys have their types.
fn assert_repaired(conn: &mut redis::Connection, key: &str, history: &str) {
    let kind: String = redis::cmd("TYPE").arg(key).query(conn).unwrap();
    assert!(kind == "hash" || kind == "none", "{key} is a {kind}");
    if kind == "hash" {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(key).query(conn).unwrap();
        for (field, value) in fields {
            assert!(
                value.len() <= 100,
                "{} holds {} bytes",
                String::from_utf8_lossy(&field),
                value.len()
            );
            let text = String::from_utf8_lossy(&value);
            let bucket = matches!(field.first(), Some(b't' | b'c' | b'f'))
                && field.len() > 1
                && field[1..].iter().all(u8::is_ascii_digit);
            if bucket {
                // A bucket's tag or counters: whole numbers.
                assert!(
                    text.parse::<u64>().is_ok(),
                    "{}: {text:?}",
                    String::from_utf8_lossy(&field)
                );
            }
        }
    }
    let kind: String = redis::cmd("TYPE").arg(history).query(conn).unwrap();
    assert!(kind == "stream" || kind == "none", "{history} is a {kind}");
}

fn hostile_case(target: &Target, value: &[u8], open: bool) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let prefix = unique_prefix();
    let config = RedisConfig::standalone(server().url())
        .prefix(&prefix)
        .timeout(Duration::from_secs(2))
        .max_staleness(Duration::ZERO)
        .injected_clock(clock.clone());
    let store = BlockingRedisStore::connect(config).unwrap();
    let policy = Policy::builder()
        .on_store_failure(StoreFailurePolicy::FailClosed)
        .half_open_probes(2)
        .minimum_reporters(2)
        .build()
        .unwrap();
    let (listeners, corrupt) = corrupt_reports();
    let breaker = store
        .breaker("b", policy)
        .unwrap()
        .with_listeners(listeners);
    let key = format!("{prefix}:{{=b}}");
    let history = format!("{prefix}:{{=b}}:history");
    let call = |outcome: Outcome| match BlockingBreaker::acquire(&breaker) {
        Ok(permit) => {
            BlockingBreaker::record(&breaker, permit, outcome.into());
            None
        }
        Err(rejected) => Some(rejected.reason()),
    };
    // A breaker with every field written: counts, a reporter, and when open, a probe out.
    call(Outcome::Success);
    call(Outcome::Failure);
    if open {
        BlockingOperate::operate(&breaker, Action::Trip).unwrap();
        clock.advance(Duration::from_secs(181));
        let _probe = BlockingBreaker::acquire(&breaker).expect("a probe");
    }
    let slot = (clock.now().as_millis() / 1_000) % 60;

    let mut conn = connection();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut conn).unwrap();
    write_garbage(&mut conn, &key, &history, target, value, slot);
    let written: Vec<u8> = redis::cmd("DUMP")
        .arg(&key)
        .query(&mut conn)
        .unwrap_or_default();
    let pinger = Pinger::start();

    // Reads never write, whatever is stored.
    let _ = BlockingOperate::snapshot(&breaker);
    let _ = store.list();
    let _ = store.history(Some("b"), 10);
    let after: Vec<u8> = redis::cmd("DUMP")
        .arg(&key)
        .query(&mut conn)
        .unwrap_or_default();
    prop_assert!(after == written, "a read changed {key}");

    // Calls: each follows the failure policy or the state as repaired.
    for outcome in [Outcome::Success, Outcome::Failure, Outcome::Success] {
        if let Some(reason) = call(outcome) {
            prop_assert!(
                matches!(
                    reason,
                    RejectReason::Open | RejectReason::ProbesBusy | RejectReason::StoreUnavailable
                ),
                "{reason:?}"
            );
        }
    }
    // Past the whole window: every bucket is read again.
    clock.advance(Duration::from_secs(3_600));
    call(Outcome::Success);
    call(Outcome::Success);
    // A transition writes the history.
    BlockingOperate::operate(&breaker, Action::Trip).unwrap();
    let _ = BlockingOperate::snapshot(&breaker);
    let (slowest_ping, pings) = pinger.stop();

    prop_assert!(
        slowest_ping <= SLOWEST_PING,
        "a PING waited {slowest_ping:?} ({pings} pings)"
    );
    let slow: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").query(&mut conn).unwrap();
    prop_assert!(
        slow.is_empty(),
        "commands slower than {SLOWEST_COMMAND_US} µs: {slow:?}"
    );
    assert_repaired(&mut conn, &key, &history);
    breaker.flush().unwrap();
    // A bucket that a close clears before anything reads it goes unread, and unreported.
    let cleared_unread = matches!(target, Target::CurrentBucket(_) | Target::OtherBucket(_))
        && store
            .history(Some("b"), 100)
            .unwrap()
            .iter()
            .any(|entry| entry.event == "closed");
    prop_assert!(
        *corrupt.lock().unwrap() > 0 || cleared_unread,
        "the repair was reported"
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .arg(&history)
        .query(&mut conn)
        .unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(128), ..ProptestConfig::default() })]

    /// Garbage of any size in any field or key of a breaker.
    #[test]
    fn hostile_data_is_repaired_cheaply_and_reported(target in targets(), value in garbage(), open in any::<bool>()) {
        hostile_case(&target, &value, open)?;
    }
}

/// The case that froze Redis for seconds: 40 KB with no separator in the reporters, and a
/// failure that reads them.
#[test]
fn a_long_reporter_list_costs_redis_nothing() {
    hostile_case(&Target::Field("rp"), &[b'A'; 40_000], false).unwrap();
    hostile_case(&Target::Field("pr"), &[b'A'; 1_000_000], true).unwrap();
}
