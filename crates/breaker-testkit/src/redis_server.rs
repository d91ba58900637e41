//! Throwaway `redis-server` processes on free loopback ports, for tests: a single node or a
//! three-node cluster. They stop when dropped, and also when the test process exits however
//! it exits (each server runs under a small shell that kills it when its stdin closes).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_INSTALL: &str = "redis-server was not found on PATH. Install it with \
`apt-get update && apt-get install -y redis-server redis-tools` (as root), or run \
`cargo xtask test`, which installs it when run as root.";

/// One running `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    /// A configuration file passed first (Sentinel needs one it can rewrite).
    config: Option<String>,
    extra: Vec<String>,
    shell: Option<(Child, ChildStdin)>,
    pid: u32,
    /// The TLS port, for a server that also speaks TLS.
    tls_port: Option<u16>,
}

/// A free loopback port below 55535 (a cluster node also uses port + 10000).
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if port < 55535 {
            return port;
        }
    }
}

impl RedisServer {
    /// A fresh single node, with no persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A fresh node with extra `redis-server` arguments (`--requirepass`, `--cluster-enabled`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut server = RedisServer::unstarted(None, extra);
        server.launch();
        server
    }

    /// A fresh node that also serves TLS on a port of its own (see
    /// [`RedisServer::tls_url`]) with the certificate `server`, trusting client certificates
    /// signed by `client_ca`, and requiring one when `require_client_cert`. The plain port
    /// stays open for the test's own commands ([`RedisServer::command`]).
    pub fn start_tls(
        server: &crate::tls::CertFiles,
        client_ca: &std::path::Path,
        require_client_cert: bool,
        extra: &[&str],
    ) -> RedisServer {
        let mut node = RedisServer::unstarted(None, extra);
        node.serve_tls(server, client_ca, require_client_cert);
        node.launch();
        node
    }

    /// Adds a TLS port to a server not started yet, as [`RedisServer::start_tls`] says.
    pub(crate) fn serve_tls(
        &mut self,
        server: &crate::tls::CertFiles,
        client_ca: &std::path::Path,
        require_client_cert: bool,
    ) {
        let tls_port = free_port();
        let mut args = vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            server.cert.display().to_string(),
            "--tls-key-file".to_owned(),
            server.key.display().to_string(),
            "--tls-ca-cert-file".to_owned(),
            client_ca.display().to_string(),
            "--tls-auth-clients".to_owned(),
            if require_client_cert { "yes" } else { "no" }.to_owned(),
        ];
        // The TLS arguments go first, so that `--sentinel` and the like stay last.
        args.append(&mut self.extra);
        self.extra = args;
        self.tls_port = Some(tls_port);
    }

    /// A server on a free port, not started yet: `config` is written to a file passed first.
    fn unstarted(config: Option<String>, extra: &[&str]) -> RedisServer {
        let port = free_port();
        RedisServer {
            port,
            dir: std::env::temp_dir().join(format!("breaker-redis-{}-{port}", std::process::id())),
            config,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            shell: None,
            pid: 0,
            tls_port: None,
        }
    }

    /// A started server whose configuration file holds `config` (Sentinel needs one it can
    /// rewrite), serving TLS too when `tls` gives its certificate and the CA of clients, or
    /// why it did not start.
    pub(crate) fn try_start_configured(
        config: String,
        extra: &[&str],
        tls: Option<(&crate::tls::CertFiles, &std::path::Path)>,
    ) -> Result<RedisServer, String> {
        let mut server = RedisServer::unstarted(Some(config), extra);
        if let Some((cert, ca)) = tls {
            server.serve_tls(cert, ca, false);
        }
        server.try_launch()?;
        Ok(server)
    }

    /// Whether the server serves TLS.
    pub(crate) fn has_tls(&self) -> bool {
        self.tls_port.is_some()
    }

    /// The TLS port, for a server that serves TLS.
    pub(crate) fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    fn launch(&mut self) {
        if let Err(err) = self.try_launch() {
            panic!("{err}");
        }
    }

    fn try_launch(&mut self) -> Result<(), String> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            return Err(HOW_TO_INSTALL.to_owned());
        }
        std::fs::create_dir_all(&self.dir).expect("create a directory for redis-server");
        let mut args = Vec::new();
        if let Some(config) = &self.config {
            let path = self.dir.join("redis.conf");
            std::fs::write(&path, config).expect("write redis-server's configuration");
            args.push(path.display().to_string());
        }
        args.extend([
            "--port".to_owned(),
            self.port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            self.dir.display().to_string(),
        ]);
        args.extend(self.extra.iter().cloned());
        // The shell starts the server, prints its pid, and once stdin closes (this value is
        // dropped, or the test process ends however it ends) kills it and removes its files.
        let script = r#"redis-server "$@" >/dev/null 2>&1 & pid=$!; echo $pid; read _; kill -CONT $pid 2>/dev/null; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$BREAKER_REDIS_DIR""#;
        let mut child = Command::new("sh")
            .env("BREAKER_REDIS_DIR", &self.dir)
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh for redis-server");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read redis-server's pid");
        self.pid = line.trim().parse().expect("redis-server's pid");
        self.shell = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(10);
        // A server with a password answers NOAUTH: it is up all the same.
        while !matches!(command(self.port, &["PING"]), Ok(pong) if pong == "PONG")
            && !matches!(command(self.port, &["PING"]), Err(err) if err.starts_with("NOAUTH"))
        {
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server {} on port {} did not start",
                    args.join(" "),
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// A Sentinel watching `master` under the name `name` (quorum 1).
    pub fn start_sentinel(master: &RedisServer, name: &str) -> RedisServer {
        let mut sentinel = RedisServer::unstarted(
            Some(format!(
                "sentinel monitor {name} 127.0.0.1 {} 1\nsentinel down-after-milliseconds {name} 1000\n",
                master.port
            )),
            &["--sentinel"],
        );
        sentinel.launch();
        sentinel
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:<TLS port>`, for a server started with
    /// [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("a server started with start_tls");
        format!("rediss://127.0.0.1:{port}")
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some((mut child, stdin)) = self.shell.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        signal("STOP", self.pid);
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        signal("CONT", self.pid);
    }

    /// How many times each command has run (`INFO commandstats`), by lower-case name.
    pub fn command_calls(&self) -> std::collections::HashMap<String, u64> {
        let info = self.command(&["INFO", "commandstats"]).unwrap_or_default();
        info.lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// How many script calls (`EVALSHA`) the server has run.
    pub fn script_calls(&self) -> u64 {
        self.command_calls().get("evalsha").copied().unwrap_or(0)
    }

    /// Sends one command and returns the reply as text (errors as `Err`).
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        command(self.port, args)
    }
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`) to process `pid`.
pub(crate) fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume_quietly();
        self.kill();
    }
}

impl RedisServer {
    fn resume_quietly(&self) {
        // A killed server's pid may belong to another process by now.
        if self.shell.is_none() {
            return;
        }
        // Quietly: the server may have been killed with a signal already.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
}

/// A three-node Redis Cluster (three masters, no replicas).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, joins them, and waits until the cluster is ready.
    pub fn start() -> RedisCluster {
        RedisCluster::join(RedisServer::start_with, |node| node.port, &[])
    }

    /// Three nodes that also serve TLS (see [`RedisServer::start_tls`]) with `certs`'s server
    /// certificate, and talk TLS to each other on the cluster bus; the TLS ports announce the
    /// nodes' TLS ports to TLS clients. [`RedisCluster::tls_urls`] reaches them.
    pub fn start_tls(certs: &crate::tls::TestCertificates) -> RedisCluster {
        let ca = certs.ca().display().to_string();
        RedisCluster::join(
            |cluster| {
                let mut extra = vec!["--tls-cluster", "yes"];
                extra.extend_from_slice(cluster);
                RedisServer::start_tls(certs.server(), certs.ca(), false, &extra)
            },
            |node| node.tls_port.expect("a TLS port"),
            &["--tls", "--cacert", &ca],
        )
    }

    /// Starts three nodes with `start` (given the cluster's arguments), joins them through
    /// the port `port` names with `redis-cli <cli> --cluster create`, and waits until the
    /// cluster is ready.
    fn join(
        start: impl Fn(&[&str]) -> RedisServer,
        port: impl Fn(&RedisServer) -> u16,
        cli: &[&str],
    ) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let config_file = format!("nodes-{}.conf", free_port());
                start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config_file,
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", port(node)))
            .collect();
        let output = Command::new("redis-cli")
            .args(cli)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|err| panic!("redis-cli could not run ({err}). {HOW_TO_INSTALL}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become ready: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// The nodes' TLS URLs, for a cluster started with [`RedisCluster::start_tls`].
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::tls_url).collect()
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// Sends `args` as one RESP command to 127.0.0.1:`port` and reads a simple reply.
fn command(port: u16, args: &[&str]) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|err| err.to_string())?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream
        .write_all(request.as_bytes())
        .map_err(|err| err.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|err| err.to_string())?;
    let line = line.trim_end();
    match line.split_at_checked(1) {
        Some(("+", rest)) | Some((":", rest)) => Ok(rest.to_owned()),
        Some(("-", rest)) => Err(rest.to_owned()),
        Some(("$", len)) => {
            let len: i64 = len.parse().map_err(|_| format!("bad reply {line:?}"))?;
            if len < 0 {
                return Ok(String::new());
            }
            let mut body = vec![0; len as usize + 2];
            reader
                .read_exact(&mut body)
                .map_err(|err| err.to_string())?;
            body.truncate(len as usize);
            String::from_utf8(body).map_err(|err| err.to_string())
        }
        _ => Err(format!("unexpected reply {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_cluster_forms_and_serves_tls() {
        let certs = crate::tls::TestCertificates::new();
        let cluster = RedisCluster::start_tls(&certs);
        let urls = cluster.tls_urls();
        assert_eq!(urls.len(), 3);
        assert!(
            urls.iter()
                .all(|url| url.starts_with("rediss://127.0.0.1:"))
        );
        let info = cluster.nodes()[2].command(&["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }
}
