//! A scriptable HTTP/1.1 server on 127.0.0.1 for adapter tests: it answers each request with
//! the next scripted reply (statuses, delays, dropped connections, hooks) and counts hits.
//!
//! It can also behave like a real backend: with a [`Capacity`] it serves up to so many
//! requests a second and answers `503` beyond that; it can be taken down (every request gets
//! `503`) and brought back cold, warming up; and it can fail only for chosen [`Client`]s (a
//! request header or a path), answering them `500`. Before each request, in this order: a
//! failing client's request fails, a request to a backend that is down fails, a request over
//! capacity fails, and only the rest take the next scripted reply.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capacity::{Capacity, CapacityModel, Verdict};

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

/// The requests of one client, for [`TestServer::fail_for`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Client {
    /// Requests carrying this header (its name in any case) with exactly this value.
    Header(String, String),
    /// Requests whose path (the request target, query included) starts with this.
    Path(String),
}

impl Client {
    fn matches(&self, target: &str, headers: &[(String, String)]) -> bool {
        match self {
            Client::Header(name, value) => headers
                .iter()
                .any(|(have, got)| have.eq_ignore_ascii_case(name) && got == value),
            Client::Path(prefix) => target.starts_with(prefix.as_str()),
        }
    }
}

/// What the server did with the requests it received, counted since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Every request received (the same as [`TestServer::hits`]).
    pub requests: usize,
    /// Requests answered with their scripted reply: not a failing client's, the backend up,
    /// within capacity.
    pub served: usize,
    /// Requests answered `500` because their client is failing.
    pub client_failures: usize,
    /// Requests answered `503` because the backend was down.
    pub down: usize,
    /// Requests answered `503` because the second's capacity was used up.
    pub over_capacity: usize,
}

#[derive(Debug)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    hits: AtomicUsize,
    last_headers: Mutex<Vec<(String, String)>>,
    stop: AtomicBool,
    started: Instant,
    model: Mutex<CapacityModel>,
    failing: Mutex<Vec<Client>>,
    counts: Mutex<Counts>,
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
            started: Instant::now(),
            model: Mutex::new(CapacityModel::new(None)),
            failing: Mutex::new(Vec::new()),
            counts: Mutex::new(Counts::default()),
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

    /// Limits what the server serves from now on (`None`: everything, as at the start).
    /// Requests beyond the capacity get `503` with the body `over capacity`.
    pub fn set_capacity(&self, capacity: Option<Capacity>) {
        lock(&self.shared.model).set_capacity(capacity);
    }

    /// Takes the backend down: every request gets `503` with the body `down` until
    /// [`TestServer::bring_up`].
    pub fn take_down(&self) {
        lock(&self.shared.model).take_down();
    }

    /// Ends an outage: the backend serves again, starting cold and warming up as its
    /// [`Capacity`] says. A backend that is up stays as it is.
    pub fn bring_up(&self) {
        let now = self.shared.started.elapsed();
        lock(&self.shared.model).bring_up(now);
    }

    /// The capacity now: the most requests served in the second that ends now (`None`:
    /// unlimited; 0 while down).
    pub fn limit(&self) -> Option<u32> {
        let now = self.shared.started.elapsed();
        lock(&self.shared.model).limit(now)
    }

    /// Answers every request of `client` with `500` (body `failing for this client`) until
    /// [`TestServer::stop_failing`], whatever else the server would do.
    pub fn fail_for(&self, client: Client) {
        let mut failing = lock(&self.shared.failing);
        if !failing.contains(&client) {
            failing.push(client);
        }
    }

    /// Serves `client` again (as far as the capacity goes).
    pub fn stop_failing(&self, client: &Client) {
        lock(&self.shared.failing).retain(|failing| failing != client);
    }

    /// What the server did with the requests so far.
    pub fn counts(&self) -> Counts {
        *lock(&self.shared.counts)
    }
}

/// Applies the failing clients, the outage and the capacity to one request: the status and
/// body to answer with instead of the scripted reply, if any. Counts the request.
fn refusal(
    shared: &Shared,
    target: &str,
    headers: &[(String, String)],
) -> Option<(u16, &'static str)> {
    let failing = lock(&shared.failing)
        .iter()
        .any(|client| client.matches(target, headers));
    let verdict = if failing {
        None
    } else {
        Some(lock(&shared.model).admit(shared.started.elapsed()))
    };
    let mut counts = lock(&shared.counts);
    counts.requests += 1;
    match verdict {
        None => {
            counts.client_failures += 1;
            Some((500, "failing for this client"))
        }
        Some(Verdict::Down) => {
            counts.down += 1;
            Some((503, "down"))
        }
        Some(Verdict::OverCapacity) => {
            counts.over_capacity += 1;
            Some((503, "over capacity"))
        }
        Some(Verdict::Served) => {
            counts.served += 1;
            None
        }
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
        // `GET /path HTTP/1.1`: the target is the second word.
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
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
        let refused = refusal(shared, &target, &headers);
        *lock(&shared.last_headers) = headers;
        let reply = match refused {
            Some((status, body)) => Reply::Body(status, body.to_owned()),
            None => lock(&shared.script)
                .pop_front()
                .unwrap_or_else(|| lock(&shared.default).clone()),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One GET over a fresh connection: the status and the body.
    fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim_end().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8(body).unwrap())
    }

    #[test]
    fn a_server_with_a_capacity_serves_at_most_that_many_a_second() {
        let server = TestServer::start();
        server.set_capacity(Some(Capacity::new(5)));
        let began = Instant::now();
        let answers: Vec<(u16, String)> = (0..12).map(|_| get(&server, "/", &[])).collect();
        let elapsed = began.elapsed();
        let counts = server.counts();
        assert_eq!(counts.requests, 12);
        assert_eq!(counts.served + counts.over_capacity, 12, "{counts:?}");
        // The first five always go; more only if the machine took over a second for these.
        assert!(counts.served >= 5, "{counts:?}");
        let bound = 5 * (1 + elapsed.as_secs() as usize);
        assert!(counts.served <= bound, "{counts:?} in {elapsed:?}");
        assert!(
            answers[..5].iter().all(|(status, _)| *status == 200),
            "{answers:?}"
        );
        let refused: Vec<_> = answers
            .iter()
            .filter(|(status, _)| *status == 503)
            .collect();
        assert_eq!(refused.len(), counts.over_capacity);
        assert!(refused.iter().all(|(_, body)| body == "over capacity"));
        // Scripted replies go to served requests only.
        server.set_capacity(None);
        server.push([Reply::Status(404)]);
        assert_eq!(get(&server, "/", &[]).0, 404);
        assert_eq!(server.limit(), None);
    }

    #[test]
    fn a_backend_taken_down_fails_everything_then_comes_back_cold() {
        let server = TestServer::start();
        // Warm, 100 a second; after an outage 1 a second, growing over an hour (so it stays
        // near 1 for the few seconds of this test).
        let capacity = Capacity::new(100).warming(0.01, Duration::from_secs(3600));
        server.set_capacity(Some(capacity));
        assert_eq!(server.limit(), Some(100));
        server.take_down();
        assert_eq!(server.limit(), Some(0));
        for _ in 0..3 {
            assert_eq!(get(&server, "/", &[]), (503, "down".to_owned()));
        }
        server.bring_up();
        let began = Instant::now();
        let answers: Vec<u16> = (0..5).map(|_| get(&server, "/", &[]).0).collect();
        let elapsed = began.elapsed();
        assert_eq!(answers[0], 200, "{answers:?}");
        let served = answers.iter().filter(|&&status| status == 200).count();
        assert!(
            served <= 1 + elapsed.as_secs() as usize,
            "{answers:?} in {elapsed:?}"
        );
        let counts = server.counts();
        assert_eq!(counts.down, 3, "{counts:?}");
        assert_eq!(counts.served, served, "{counts:?}");
        assert_eq!(counts.over_capacity, 5 - served, "{counts:?}");
        assert!(server.limit().is_some_and(|limit| limit < 100));
    }

    #[test]
    fn chosen_clients_fail_by_header_or_path_while_others_are_served() {
        let server = TestServer::start();
        let by_header = Client::Header("X-Client".to_owned(), "b".to_owned());
        let by_path = Client::Path("/broken".to_owned());
        server.fail_for(by_header.clone());
        server.fail_for(by_path.clone());
        server.fail_for(by_path.clone());
        let failed = (500, "failing for this client".to_owned());
        assert_eq!(get(&server, "/", &[("x-client", "b")]), failed);
        assert_eq!(get(&server, "/broken/x?q=1", &[]), failed);
        assert_eq!(get(&server, "/", &[("x-client", "a")]).0, 200);
        assert_eq!(get(&server, "/fine", &[]).0, 200);
        // A failing client's requests take no capacity and no scripted reply.
        server.push([Reply::Status(404)]);
        assert_eq!(get(&server, "/broken", &[]).0, 500);
        assert_eq!(get(&server, "/", &[]).0, 404);
        server.stop_failing(&by_path);
        assert_eq!(get(&server, "/broken", &[]).0, 200);
        assert_eq!(get(&server, "/", &[("X-CLIENT", "b")]).0, 500);
        let counts = server.counts();
        assert_eq!(
            (counts.requests, counts.client_failures, counts.served),
            (8, 4, 4)
        );
        assert_eq!(server.hits(), 8);
    }
}
