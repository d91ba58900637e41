//! The demo's backend: a small HTTP/1.1 server on 127.0.0.1 that is healthy, then fails with
//! `503`, then is healthy again, by the clock.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the backend fails: from `failing_from` to `healthy_from`, after it starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Script {
    pub(crate) failing_from: Duration,
    pub(crate) healthy_from: Duration,
}

/// The running backend; it stops when dropped.
pub(crate) struct Backend {
    port: u16,
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
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let hits = counting.clone();
                    std::thread::spawn(move || serve(stream, &hits, started, script));
                }
            }
        });
        Ok(Backend { port, hits, stop })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
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

fn serve(stream: TcpStream, hits: &AtomicU64, started: Instant, script: Script) {
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
        let elapsed = started.elapsed();
        let failing = elapsed >= script.failing_from && elapsed < script.healthy_from;
        let (status, body) = if failing {
            ("503 Service Unavailable", "down")
        } else {
            ("200 OK", "up")
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
