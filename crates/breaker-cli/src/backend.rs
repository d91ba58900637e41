//! The demo's backend: a small HTTP/1.1 server on 127.0.0.1 that is healthy, then fails with
//! `503`, then is healthy again, by the clock; optionally it comes back cold, like a real
//! backend whose caches and pools refill, and warms up.
//!
//! The test kit's server has the same capacity model; this command is published and the test
//! kit is not, so the demo keeps its own small server.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the backend fails: from `failing_from` to `healthy_from`, after it starts; then, with
/// a `warm_up`, it serves at most a tenth of `capacity` requests a second at first, growing in
/// a straight line to all of it over `warm_up`, and answers `503` beyond that.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Script {
    pub(crate) failing_from: Duration,
    pub(crate) healthy_from: Duration,
    pub(crate) warm_up: Option<Duration>,
    /// Requests a second once warm.
    pub(crate) capacity: u32,
}

/// The share of its capacity the backend serves as it comes back.
const COLD_SHARE: f64 = 0.1;

impl Script {
    /// The most requests served in the second that ends `elapsed` after the start, while
    /// warming up (`None`: no limit).
    fn limit(&self, elapsed: Duration) -> Option<usize> {
        let warm_up = self.warm_up?;
        let since = elapsed.checked_sub(self.healthy_from)?;
        if since >= warm_up {
            return None;
        }
        let share = COLD_SHARE + (1.0 - COLD_SHARE) * since.as_secs_f64() / warm_up.as_secs_f64();
        Some((f64::from(self.capacity) * share) as usize)
    }
}

/// What the backend answers at `elapsed`, given the times of the requests it served during
/// the warm-up's last second (which this updates).
fn answer(
    script: &Script,
    elapsed: Duration,
    served: &mut VecDeque<Duration>,
) -> (&'static str, &'static str) {
    if elapsed >= script.failing_from && elapsed < script.healthy_from {
        return ("503 Service Unavailable", "down");
    }
    if let Some(limit) = script.limit(elapsed) {
        while served
            .front()
            .is_some_and(|&at| at + Duration::from_secs(1) <= elapsed)
        {
            served.pop_front();
        }
        if served.len() >= limit {
            return ("503 Service Unavailable", "busy");
        }
        served.push_back(elapsed);
    }
    ("200 OK", "up")
}

/// The running backend; it stops when dropped.
pub(crate) struct Backend {
    port: u16,
    warm_up: Option<Duration>,
    hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub(crate) fn start(script: Script) -> std::io::Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (counting, stopping) = (hits.clone(), stop.clone());
        let served = Arc::new(Mutex::new(VecDeque::new()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let (hits, served) = (counting.clone(), served.clone());
                    std::thread::spawn(move || serve(stream, &hits, &served, started, script));
                }
            }
        });
        Ok(Backend {
            port,
            warm_up: script.warm_up,
            hits,
            stop,
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// How long the backend takes to warm up after the outage, if it does.
    pub(crate) fn warm_up(&self) -> Option<Duration> {
        self.warm_up
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    stream: TcpStream,
    hits: &AtomicU64,
    served: &Mutex<VecDeque<Duration>>,
    started: Instant,
    script: Script,
) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        // Requests are GETs without bodies: read up to the blank line.
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.trim_end().is_empty() => break,
                Ok(_) => {}
            }
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let (status, body) = {
            let mut served = served
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            answer(&script, started.elapsed(), &mut served)
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn the_backend_fails_then_warms_up_from_a_tenth_of_its_capacity() {
        let script = Script {
            failing_from: ms(1000),
            healthy_from: ms(2000),
            warm_up: Some(ms(4000)),
            capacity: 100,
        };
        let mut served = VecDeque::new();
        // 200 requests a second, every 5 ms, for 8 s: how many each second serves.
        let per_second: Vec<usize> = (0..8u64)
            .map(|second| {
                (0..200u64)
                    .filter(|i| {
                        answer(&script, ms(second * 1000 + i * 5), &mut served).0 == "200 OK"
                    })
                    .count()
            })
            .collect();
        // Healthy, down, then from 10 (a tenth) up to all, and no limit once warm.
        assert_eq!(per_second[0], 200);
        assert_eq!(per_second[1], 0);
        for (second, expected) in [(2, 10..=33), (3, 32..=56), (4, 55..=78), (5, 77..=100)] {
            assert!(expected.contains(&per_second[second]), "{per_second:?}");
        }
        assert_eq!(per_second[6..], [200, 200]);
        // Without a warm-up it is back at full strength at once.
        let script = Script {
            warm_up: None,
            ..script
        };
        assert_eq!(answer(&script, ms(2000), &mut VecDeque::new()).0, "200 OK");
        assert_eq!(script.limit(ms(2000)), None);
    }
}
