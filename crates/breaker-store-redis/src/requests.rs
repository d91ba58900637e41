//! What the fleet costs Redis: the requests a store sends, counted by the process, and what
//! Redis itself says it spent ([`RedisUsage`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `metrics` counter of requests sent to Redis by every store of the process.
pub(crate) const REQUESTS_METRIC: &str = "breaker_redis_requests_total";

/// Requests one store has sent: each a round trip (a script call, a command, or a pipeline
/// of plain reads), the subscription to pushed changes aside.
#[derive(Debug, Default)]
pub(crate) struct Requests(AtomicU64);

impl Requests {
    /// Counts a request about to be sent, here and in [`REQUESTS_METRIC`].
    pub(crate) fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(REQUESTS_METRIC).increment(1);
    }

    /// How many were sent so far.
    pub(crate) fn so_far(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a Redis server has spent since it started, as its `INFO` says: counters that a
/// caller samples twice and divides by the time between to get rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisUsage {
    /// CPU time, user and system, all threads (`used_cpu_user` + `used_cpu_sys`).
    pub cpu: Duration,
    /// Script calls (`EVALSHA` and `EVAL`): the breakers' own requests, and any other
    /// client's scripts.
    pub script_calls: u64,
    /// Commands processed, those that scripts run included (`total_commands_processed`).
    pub commands: u64,
}

impl RedisUsage {
    /// The counters in a reply to `INFO cpu commandstats stats`: one server's text, or a
    /// Cluster's nodes' (summed); `None` when a section is missing.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn from_reply(reply: &redis::Value) -> Option<RedisUsage> {
        use redis::Value;
        match reply {
            Value::BulkString(bytes) => RedisUsage::parse(&String::from_utf8_lossy(bytes)),
            Value::VerbatimString { text, .. } | Value::SimpleString(text) => {
                RedisUsage::parse(text)
            }
            Value::Map(nodes) => RedisUsage::sum(nodes.iter().map(|(_, info)| info)),
            Value::Array(nodes) => RedisUsage::sum(nodes.iter().map(|node| match node {
                Value::Array(pair) if pair.len() == 2 => &pair[1],
                other => other,
            })),
            _ => None,
        }
    }

    /// The sum of several servers' usage; `None` when one cannot be read.
    fn sum<'a>(nodes: impl Iterator<Item = &'a redis::Value>) -> Option<RedisUsage> {
        let mut total = RedisUsage {
            cpu: Duration::ZERO,
            script_calls: 0,
            commands: 0,
        };
        for node in nodes {
            let usage = RedisUsage::from_reply(node)?;
            total.cpu += usage.cpu;
            total.script_calls += usage.script_calls;
            total.commands += usage.commands;
        }
        Some(total)
    }

    /// The counters in the text of `INFO cpu commandstats stats`; `None` when a section is
    /// missing.
    fn parse(info: &str) -> Option<RedisUsage> {
        let (mut user, mut system, mut commands) = (None, None, None);
        let mut script_calls = 0;
        for line in info.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            match key {
                "used_cpu_user" => user = value.parse::<f64>().ok(),
                "used_cpu_sys" => system = value.parse::<f64>().ok(),
                "total_commands_processed" => commands = value.parse::<u64>().ok(),
                "cmdstat_evalsha" | "cmdstat_eval" => {
                    script_calls += value
                        .split(',')
                        .find_map(|field| field.strip_prefix("calls="))
                        .and_then(|calls| calls.parse::<u64>().ok())
                        .unwrap_or(0);
                }
                _ => {}
            }
        }
        let cpu = Duration::try_from_secs_f64(user? + system?).ok()?;
        Some(RedisUsage {
            cpu,
            script_calls,
            commands: commands?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_info() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n\
                    # Commandstats\r\ncmdstat_evalsha:calls=40,usec=9,usec_per_call=0.2,rejected_calls=0,failed_calls=1\r\n\
                    cmdstat_eval:calls=2,usec=1\r\ncmdstat_get:calls=7,usec=1\r\n\
                    # Stats\r\ntotal_commands_processed:123\r\n";
        assert_eq!(
            RedisUsage::parse(info),
            Some(RedisUsage {
                cpu: Duration::from_millis(3_750),
                script_calls: 42,
                commands: 123,
            })
        );
        assert_eq!(
            RedisUsage::parse("# Stats\r\ntotal_commands_processed:1\r\n"),
            None
        );
    }
}
