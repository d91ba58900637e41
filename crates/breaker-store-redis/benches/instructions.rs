//! Instructions Redis runs per call of the breaker script, under callgrind, which counts the
//! same whatever else the machine is doing: a `redis-server` of its own under
//! `valgrind --tool=callgrind`, counters zeroed (`callgrind_control -z`) before and dumped
//! (`callgrind_control -d`) after 1 000 calls made one at a time on one connection, after 200
//! to warm up. The time is injected, so every call lands in one bucket; each step has a key of
//! its own. Steps: `EVALSHA` of `return 1` and a bare `HINCRBY` for scale, then for 10, 60 and
//! 1000 buckets a success on a closed breaker and a failure that does not trip (the policy's
//! `minimum_failures` is 2^40), laid out by the store's own declaration of the script's
//! arguments (`src/script/argv.rs`); then `MEMORY USAGE` of one breaker at the default policy
//! (never tripping) with every bucket of its window written, and again 1 000 calls later.
//!
//! Needs `valgrind` (with `callgrind_control`) and `redis-server`. Measures only under
//! `cargo bench`; writes `target/breaker-bench/instructions.txt` for
//! `cargo xtask bench instructions`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/script/argv.rs"]
#[allow(dead_code)]
mod argv;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use breaker_core::Policy;
use breaker_core::store::PolicyMillis;
use breaker_testkit::latency::write_figures;
use redis::{Connection, Script, Value};

const CALLS: u64 = 1_000;
const WARM: u64 = 200;
const NOW: u64 = 1_764_000_000_000;

/// `redis-server` under callgrind, stopped when dropped.
struct Server {
    child: Child,
    dumps: PathBuf,
}

impl Server {
    fn start(dumps: &Path) -> (Server, Connection) {
        std::fs::create_dir_all(dumps).unwrap();
        for entry in std::fs::read_dir(dumps).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!(
                "--callgrind-out-file={}/callgrind.out.%p",
                dumps.display()
            ))
            .args(["redis-server", "--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("valgrind and redis-server are installed");
        let server = Server {
            child,
            dumps: dumps.to_owned(),
        };
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut connection) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut connection).is_ok()
            {
                return (server, connection);
            }
            assert!(
                Instant::now() < deadline,
                "redis-server under valgrind did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn control(&self, flag: &str) {
        let status = Command::new("callgrind_control")
            .arg(flag)
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .status()
            .expect("callgrind_control is installed");
        assert!(status.success(), "callgrind_control {flag} failed");
    }

    /// Instructions of the newest dump.
    fn last_dump(&self) -> u64 {
        let newest = std::fs::read_dir(&self.dumps)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .max_by_key(|path| std::fs::metadata(path).unwrap().modified().unwrap())
            .unwrap();
        let text = std::fs::read_to_string(&newest).unwrap();
        text.lines()
            .find_map(|line| {
                line.strip_prefix("summary:")
                    .or_else(|| line.strip_prefix("totals:"))
            })
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|ir| ir.parse().ok())
            .unwrap()
    }

    /// Instructions per call of `call`, made `CALLS` times after `WARM`.
    fn per_call(&self, mut call: impl FnMut()) -> u64 {
        for _ in 0..WARM {
            call();
        }
        self.control("-z");
        for _ in 0..CALLS {
            call();
        }
        self.control("-d");
        self.last_dump() / CALLS
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The record step of a closed breaker under `policy` at `now`: `outcome` 0 success, 1 failure.
fn record(
    script: &Script,
    connection: &mut Connection,
    key: &str,
    policy: &Policy,
    now: u64,
    outcome: u64,
) {
    step(script, connection, key, policy, now, "record", outcome);
}

/// The script's `op` on a closed breaker under `policy` at `now`; `outcome` as in
/// [`record`].
fn step(
    script: &Script,
    connection: &mut Connection,
    key: &str,
    policy: &Policy,
    now: u64,
    op: &str,
    outcome: u64,
) {
    let mut numbers = argv::Numbers::new(policy, 86_400_000, 1_000);
    numbers
        .set(argv::Num::Now, argv::number(now))
        .set(argv::Num::Op4, argv::number(outcome));
    let mut invocation = script.prepare_invoke();
    invocation.key(key).key(format!("{key}:history"));
    for arg in argv::argv(op, numbers, "r1") {
        invocation.arg(arg);
    }
    let reply: Value = invocation.invoke(connection).unwrap();
    assert!(
        !matches!(reply, Value::ServerError(_)),
        "the script failed: {reply:?}"
    );
}

/// A 60 s window in `buckets` buckets that never trips, so every call takes the closed path.
fn never_tripping(buckets: u32) -> Policy {
    Policy::builder()
        .window(Duration::from_secs(60))
        .buckets(buckets)
        .minimum_failures(1 << 40)
        .build()
        .unwrap()
}

/// The hostile values the script is measured on: each replaces one stored value before every
/// call, which the call must repair. The longest list each field may hold (every entry
/// parsed, the last one garbage), and 1 MB of one byte; `c@` is the counter of the bucket
/// the calls land in.
fn hostile_values() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let list = |entries: usize, entry: &str| {
        let mut text = vec![entry; entries - 1].join(",");
        text.push_str(",x:y");
        text.into_bytes()
    };
    let megabyte = vec![b'A'; 1 << 20];
    vec![
        (
            "pr_longest",
            "pr",
            list(1_000, "9007199254740991:9007199254740991"),
        ),
        (
            "rp_longest",
            "rp",
            list(16, &format!("{}:9007199254740991", "r".repeat(64))),
        ),
        ("s_1mb", "s", megabyte.clone()),
        ("x_1mb", "x", megabyte.clone()),
        ("pr_1mb", "pr", megabyte.clone()),
        ("rp_1mb", "rp", megabyte.clone()),
        ("bucket_1mb", "c@", megabyte),
    ]
}

/// Calls measured per hostile value.
const HOSTILE_ROUNDS: u64 = 5;

/// Instructions of the costliest step (a success, a failure, or an `acquire`, which reads
/// every field) that meets each hostile value, for `buckets` buckets, each value written
/// again before each call.
fn hostile(
    server: &Server,
    script: &Script,
    connection: &mut Connection,
    buckets: u32,
    figures: &mut String,
) -> u64 {
    let policy = never_tripping(buckets);
    let mut worst = 0;
    for (name, field, value) in hostile_values() {
        let key = format!("breaker:{{=hostile_{name}_{buckets}}}");
        // Every bucket written, so that a state repaired counts the whole window again.
        let bucket_ms = policy.bucket_millis();
        for bucket in 0..u64::from(buckets) {
            record(
                script,
                connection,
                &key,
                &policy,
                NOW + bucket * bucket_ms,
                1,
            );
        }
        let last = NOW + (u64::from(buckets) - 1) * bucket_ms;
        let field = if field == "c@" {
            format!("c{}", (last / bucket_ms) % u64::from(buckets))
        } else {
            field.to_owned()
        };
        let write = |connection: &mut Connection| {
            let _: () = redis::cmd("HSET")
                .arg(&key)
                .arg(&field)
                .arg(&value)
                .query(connection)
                .unwrap();
        };
        // Counted around the call alone: the write of a megabyte costs Redis more than
        // the call, and by as much as the value it replaces.
        let mut per_call = 0;
        for (op, outcome) in [("record", 0), ("record", 1), ("acquire", 0)] {
            let mut total = 0;
            for _ in 0..HOSTILE_ROUNDS {
                write(connection);
                server.control("-z");
                step(script, connection, &key, &policy, last, op, outcome);
                server.control("-d");
                total += server.last_dump();
            }
            per_call = per_call.max(total / HOSTILE_ROUNDS);
        }
        let _ = writeln!(figures, "hostile_{name}_{buckets}={per_call}");
        worst = worst.max(per_call);
    }
    worst
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("instructions: measured only under `cargo bench` (it runs Redis under valgrind)");
        return;
    }
    let dumps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/breaker-bench/callgrind");
    let (server, mut connection) = Server::start(&dumps);
    let script = Script::new(include_str!("../src/breaker.lua"));
    let one = Script::new("return 1");
    let mut figures = String::new();

    let scale = server.per_call(|| {
        let _: i64 = one.invoke(&mut connection).unwrap();
    });
    let _ = writeln!(figures, "evalsha_return_1={scale}");
    let hincrby = server.per_call(|| {
        let _: i64 = redis::cmd("HINCRBY")
            .arg("bare")
            .arg("calls")
            .arg(1)
            .query(&mut connection)
            .unwrap();
    });
    let _ = writeln!(figures, "hincrby={hincrby}");
    for buckets in [10u32, 60, 1000] {
        let policy = never_tripping(buckets);
        for (name, outcome) in [("success", 0), ("failure", 1)] {
            let key = format!("breaker:{{={name}{buckets}}}");
            let per_call = server.per_call(|| {
                record(&script, &mut connection, &key, &policy, NOW, outcome);
            });
            let _ = writeln!(figures, "{name}_{buckets}={per_call}");
        }
    }

    let mut worst = 0;
    for buckets in [60u32, 1000] {
        worst = worst.max(hostile(
            &server,
            &script,
            &mut connection,
            buckets,
            &mut figures,
        ));
    }
    let _ = writeln!(figures, "hostile_worst={worst}");

    // One breaker at the default policy (never tripping) with every bucket of its window
    // written.
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();
    let key = "breaker:{=memory}";
    let bucket_ms = policy.bucket_millis();
    for bucket in 0..u64::from(policy.buckets()) {
        for outcome in [0, 1] {
            record(
                &script,
                &mut connection,
                key,
                &policy,
                NOW + bucket * bucket_ms,
                outcome,
            );
        }
    }
    let usage = |connection: &mut Connection| -> u64 {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query(connection)
            .unwrap()
    };
    let _ = writeln!(figures, "memory_all_buckets={}", usage(&mut connection));
    let last = NOW + (u64::from(policy.buckets()) - 1) * bucket_ms;
    for call in 0..1_000 {
        record(&script, &mut connection, key, &policy, last, call % 2);
    }
    let _ = writeln!(
        figures,
        "memory_1000_calls_later={}",
        usage(&mut connection)
    );
    drop(server);
    print!("{figures}");
    write_figures("instructions", &figures);
}
