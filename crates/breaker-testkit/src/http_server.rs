//! A scriptable HTTP/1.1 server on 127.0.0.1 for adapter tests: it answers each request with
//! the next scripted reply (statuses, delays, dropped connections, hooks) and counts hits.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server answers one request.
#[derive(Clone)]
pub enum Reply {
    /// This status, with the body `ok`.
    Status(u16),
    /// This status and body.
    Body(u16, String),
    /// This status after a wait.
    Delayed(Duration, u16),
    /// Close the connection without answering.
    Drop,
    /// Run the hook (for example, move a manual clock), then answer with this status.
    Hook(Arc<dyn Fn() + Send + Sync>, u16),
    /// This status with these extra headers (say, `Retry-After`).
    Headers(u16, Vec<(String, String)>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Status(status) => write!(f, "Status({status})"),
            Reply::Body(status, body) => write!(f, "Body({status}, {body:?})"),
            Reply::Delayed(wait, status) => write!(f, "Delayed({wait:?}, {status})"),
            Reply::Drop => f.write_str("Drop"),
            Reply::Hook(_, status) => write!(f, "Hook({status})"),
            Reply::Headers(status, headers) => write!(f, "Headers({status}, {headers:?})"),
        }
    }
}

#[derive(Debug)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    hits: AtomicUsize,
    last_headers: Mutex<Vec<(String, String)>>,
    stop: AtomicBool,
}

/// The server; it stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    port: u16,
    shared: Arc<Shared>,
}

impl TestServer {
    /// Starts a server answering `200 ok` until told otherwise.
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::Status(200)),
            hits: AtomicUsize::new(0),
            last_headers: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let shared = accepting.clone();
                    std::thread::spawn(move || serve(stream, &shared));
                }
            }
        });
        TestServer { port, shared }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Queues replies for the next requests.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.script).extend(replies);
    }

    /// The reply once the queue is empty.
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.shared.default) = reply;
    }

    /// The headers of the last request.
    pub fn last_request_headers(&self) -> Vec<(String, String)> {
        lock(&self.shared.last_headers).clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A URL on a loopback port where nothing listens (connections are refused).
pub fn refused_url(path: &str) -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1")
        .local_addr()
        .expect("local address")
        .port();
    format!("http://127.0.0.1:{port}{path}")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Serves one keep-alive connection until the client closes it.
fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
                if name == "content-length" {
                    length = value.parse().unwrap_or(0);
                }
                headers.push((name, value));
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        shared.hits.fetch_add(1, Ordering::SeqCst);
        *lock(&shared.last_headers) = headers;
        let reply = lock(&shared.script)
            .pop_front()
            .unwrap_or_else(|| lock(&shared.default).clone());
        let mut extra = String::new();
        let (status, body) = match reply {
            Reply::Status(status) => (status, "ok".to_owned()),
            Reply::Body(status, body) => (status, body),
            Reply::Delayed(wait, status) => {
                // Stands for a slow backend: the delay is the reply, not a wait for state.
                std::thread::sleep(wait);
                (status, "ok".to_owned())
            }
            Reply::Hook(hook, status) => {
                hook();
                (status, "ok".to_owned())
            }
            Reply::Headers(status, headers) => {
                for (name, value) in headers {
                    extra.push_str(&format!("{name}: {value}\r\n"));
                }
                (status, "ok".to_owned())
            }
            Reply::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        };
        let response = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nset-cookie: session=s3cret\r\nx-test: yes\r\n{extra}\r\n{body}",
            reason(status),
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
