//! Throwaway `redis-server` processes on free loopback ports, for tests: a single node, a
//! three-node cluster, or a cluster of three masters with a replica each. They stop when
//! dropped, and also when the test process exits however it exits (each server runs under a
//! small shell that kills it when its stdin closes).

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

/// A free loopback port below 55535 whose port + 10000 is free too (a cluster node listens
/// there for its bus; a node whose bus port is taken does not start).
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if port < 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
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

    /// The CPU time the server has used so far, user and system, all threads (`INFO cpu`):
    /// what a bench divides by the time it ran to give Redis's share of a core.
    pub fn cpu_time(&self) -> Duration {
        let info = self.command(&["INFO", "cpu"]).unwrap_or_default();
        let seconds: f64 = info
            .lines()
            .filter_map(|line| {
                let (key, value) = line.trim().split_once(':')?;
                matches!(key, "used_cpu_sys" | "used_cpu_user")
                    .then(|| value.parse::<f64>().ok())?
            })
            .sum();
        Duration::from_secs_f64(seconds)
    }

    /// How many connections the server has received since it started
    /// (`total_connections_received`; the one that asks is counted too).
    pub fn connections_received(&self) -> u64 {
        let info = self.command(&["INFO", "stats"]).unwrap_or_default();
        info.lines()
            .find_map(|line| line.trim().strip_prefix("total_connections_received:"))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no total_connections_received in INFO stats: {info}"))
    }

    /// Sends one command and returns the reply as text (errors as `Err`).
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        command(self.port, args)
    }

    /// Sends `AUTH password`, then `args`, on one connection: for a server that asks for a
    /// password.
    pub fn command_with_password(&self, password: &str, args: &[&str]) -> Result<String, String> {
        commands(self.port, &[&["AUTH", password], args])
    }

    /// Sends `READONLY`, then `args`, on one connection: a Cluster replica then answers a
    /// read of a key its master serves (instead of redirecting it), from its own copy.
    pub fn command_readonly(&self, args: &[&str]) -> Result<String, String> {
        commands(self.port, &[&["READONLY"], args])
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

/// A Redis Cluster of three masters, alone ([`RedisCluster::start`]) or each with one replica
/// ([`RedisCluster::start_with_replicas`]), for failover tests.
///
/// The nodes keep their place in [`RedisCluster::nodes`] whatever their roles become; the
/// roles are read from the nodes themselves (`CLUSTER NODES`) whenever asked.
///
/// A failover of the master that serves a key, step by step:
///
/// ```no_run
/// use breaker_testkit::redis_server::RedisCluster;
///
/// let cluster = RedisCluster::start_with_replicas();
/// let master = cluster.master_of("{=name}");
/// let replica = cluster.replica_of(master);
/// cluster.failover(replica);
/// assert_eq!(cluster.master_of("{=name}").port(), replica.port());
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// The ports of the nodes killed with [`RedisCluster::kill`]: the waits leave them out.
    killed: std::sync::Mutex<Vec<u16>>,
}

/// How long `redis-cli --cluster create` may take before it is given up.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a failover may take before the waits for it give up.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

impl RedisCluster {
    /// Starts three nodes, joins them, and waits until the cluster is ready.
    pub fn start() -> RedisCluster {
        RedisCluster::join(RedisServer::start_with, |node| node.port, &[], 0)
    }

    /// Starts six nodes and joins them as three masters, each with one replica; waits until
    /// the cluster is ready and every replica is in sync with its master. A node that
    /// stops answering is considered down after two seconds (`cluster-node-timeout`), so
    /// that a replica takes over from a killed master within a few seconds.
    pub fn start_with_replicas() -> RedisCluster {
        RedisCluster::join(
            |cluster| {
                // No delay before a full sync (Redis 7 otherwise waits 5 s for more
                // replicas), and a replica may take over however long its master was gone.
                let mut extra = vec![
                    "--repl-diskless-sync-delay",
                    "0",
                    "--cluster-replica-validity-factor",
                    "0",
                ];
                extra.extend_from_slice(cluster);
                RedisServer::start_with(&extra)
            },
            |node| node.port,
            &[],
            1,
        )
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
            0,
        )
    }

    /// Starts three masters and `replicas` replicas of each with `start` (given the
    /// cluster's arguments), joins them through the port `port` names with
    /// `redis-cli <cli> --cluster create`, and waits until the cluster is ready. A join that
    /// fails (a cluster bus port taken by another process, say) is tried again with new
    /// nodes, twice at most.
    fn join(
        start: impl Fn(&[&str]) -> RedisServer,
        port: impl Fn(&RedisServer) -> u16,
        cli: &[&str],
        replicas: usize,
    ) -> RedisCluster {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match RedisCluster::try_join(&start, &port, cli, replicas) {
                Ok(cluster) => return cluster,
                Err(err) => failures.push(err),
            }
        }
        panic!(
            "the Redis Cluster did not form:\n{}",
            failures.join("\n---\n")
        );
    }

    fn try_join(
        start: &impl Fn(&[&str]) -> RedisServer,
        port: &impl Fn(&RedisServer) -> u16,
        cli: &[&str],
        replicas: usize,
    ) -> Result<RedisCluster, String> {
        // Replicas make failures worth detecting quickly; without them, a slow machine
        // must not make a node look down.
        let node_timeout = if replicas > 0 { "2000" } else { "5000" };
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                let config_file = format!("nodes-{}.conf", free_port());
                start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config_file,
                    "--cluster-node-timeout",
                    node_timeout,
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", port(node)))
            .collect();
        let mut create = Command::new("redis-cli");
        create
            .args(cli)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        run_within(&mut create, CREATE_TIMEOUT)?;
        let cluster = RedisCluster {
            nodes,
            killed: std::sync::Mutex::new(Vec::new()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        cluster.poll(deadline, "the cluster to be ready", || {
            cluster.live_nodes().all(|node| {
                node.command(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
        })?;
        let masters = 3;
        cluster.poll(
            deadline,
            "every node to know every master and replica",
            || {
                cluster.live_nodes().all(|node| {
                    cluster_nodes(node).is_ok_and(|lines| {
                        lines.len() == cluster.nodes.len()
                            && lines.iter().filter(|line| line.is_master()).count() == masters
                            && lines.iter().all(|line| line.is_healthy())
                    })
                })
            },
        )?;
        cluster.poll(deadline, "every replica to be in sync", || {
            cluster.replicas_in_sync()
        })?;
        Ok(cluster)
    }

    /// The nodes' TLS URLs, for a cluster started with [`RedisCluster::start_tls`].
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::tls_url).collect()
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, masters and replicas, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let node = self.live_nodes().next().expect("a live node");
        let slot = node
            .command(&["CLUSTER", "KEYSLOT", key])
            .unwrap_or_else(|err| panic!("CLUSTER KEYSLOT {key}: {err}"));
        slot.parse().expect("a slot number")
    }

    /// The node that serves `key`'s slot now, as the first live node sees it.
    pub fn master_of(&self, key: &str) -> &RedisServer {
        let slot = self.slot_of(key);
        let node = self.live_nodes().next().expect("a live node");
        let lines = cluster_nodes(node).unwrap_or_else(|err| panic!("CLUSTER NODES: {err}"));
        let master = lines
            .iter()
            .find(|line| line.is_master() && line.serves(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {lines:#?}"));
        self.node_on(master.port)
    }

    /// A live replica of `master`, as `master` sees its replicas; waits for one a while
    /// (after a failover, the old master takes a moment to be known as a replica).
    pub fn replica_of(&self, master: &RedisServer) -> &RedisServer {
        let mut found = None;
        let waited = self.poll(
            Instant::now() + FAILOVER_TIMEOUT,
            &format!("the node on port {} to have a replica", master.port),
            || {
                let Ok(lines) = cluster_nodes(master) else {
                    return false;
                };
                let Some(me) = lines.iter().find(|line| line.myself) else {
                    return false;
                };
                let killed = self.killed_ports();
                found = lines
                    .iter()
                    .find(|line| {
                        line.master.as_ref() == Some(&me.id)
                            && line.is_healthy()
                            && !killed.contains(&line.port)
                    })
                    .map(|line| line.port);
                found.is_some()
            },
        );
        if let Err(err) = waited {
            panic!("{err}");
        }
        self.node_on(found.expect("a replica was found"))
    }

    /// Asks `replica` to take over from its master (`CLUSTER FAILOVER`: the master stops
    /// its clients until the replica has every write, then the replica is promoted), and
    /// waits until it is a master and every live node agrees the cluster is ok.
    pub fn failover(&self, replica: &RedisServer) {
        self.ask_failover(replica, &["CLUSTER", "FAILOVER"]);
    }

    /// Like [`RedisCluster::failover`] with `CLUSTER FAILOVER FORCE`: the replica takes
    /// over without waiting for its master to hand over the last writes.
    pub fn force_failover(&self, replica: &RedisServer) {
        self.ask_failover(replica, &["CLUSTER", "FAILOVER", "FORCE"]);
    }

    /// Asks `replica` to take over with `command`, again while it is still a replica: Redis
    /// gives a manual failover up when its election does not end within its own timeout
    /// (5 s), which a loaded machine was seen to make happen.
    fn ask_failover(&self, replica: &RedisServer, command: &[&str]) {
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        loop {
            let still_replica = replica
                .command(&["INFO", "replication"])
                .is_ok_and(|info| info.contains("role:slave"));
            if still_replica {
                let reply = replica.command(command);
                assert_eq!(
                    reply.as_deref(),
                    Ok("OK"),
                    "{} on port {}",
                    command.join(" "),
                    replica.port
                );
            }
            let attempt = (Instant::now() + Duration::from_secs(10)).min(deadline);
            match self.promotion(replica, attempt) {
                Ok(()) => return,
                Err(err) if Instant::now() >= deadline => panic!("{err}"),
                Err(_) => {}
            }
        }
    }

    /// Kills `node` (SIGKILL), as a crash would; the waits leave it out from now on. It
    /// takes `&self`, so that threads sharing the cluster can go on using it.
    pub fn kill(&self, node: &RedisServer) {
        self.killed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(node.port);
        signal("KILL", node.pid());
    }

    /// Waits until `replica` says it is a master, every live node names it the master of
    /// its slots, and every live node says the cluster is ok. Panics at `deadline`.
    ///
    /// A replica that won an election less than four node timeouts (8 s) before its master
    /// dies was seen never to be followed: Redis 7.0 reused that election's result, whose
    /// epoch the other nodes refused. One failover per shard, or a pause between them,
    /// avoids it.
    pub fn wait_for_promotion(&self, replica: &RedisServer, deadline: Instant) {
        if let Err(err) = self.promotion(replica, deadline) {
            panic!("{err}");
        }
    }

    /// [`RedisCluster::wait_for_promotion`], saying what it waited for when `deadline` came.
    fn promotion(&self, replica: &RedisServer, deadline: Instant) -> Result<(), String> {
        self.poll(
            deadline,
            &format!("the node on port {} to become a master", replica.port),
            || {
                replica
                    .command(&["INFO", "replication"])
                    .is_ok_and(|info| info.contains("role:master"))
                    && self.live_nodes().all(|node| {
                        node.command(&["CLUSTER", "INFO"])
                            .is_ok_and(|info| info.contains("cluster_state:ok"))
                            && cluster_nodes(node).is_ok_and(|lines| {
                                lines.iter().any(|line| {
                                    line.port == replica.port
                                        && line.is_master()
                                        && !line.slots.is_empty()
                                })
                            })
                    })
            },
        )
    }

    /// Whether every live replica's link to its master is up, with no sync in progress.
    fn replicas_in_sync(&self) -> bool {
        self.live_nodes().all(|node| {
            node.command(&["INFO", "replication"]).is_ok_and(|info| {
                info.contains("role:master")
                    || info.contains("master_link_status:up")
                        && info.contains("master_sync_in_progress:0")
            })
        })
    }

    /// The node listening on `port` (its plain port or its TLS port).
    fn node_on(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|node| node.port == port || node.tls_port == Some(port))
            .unwrap_or_else(|| panic!("no node of this cluster listens on port {port}"))
    }

    fn killed_ports(&self) -> Vec<u16> {
        self.killed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The nodes not killed with [`RedisCluster::kill`].
    fn live_nodes(&self) -> impl Iterator<Item = &RedisServer> {
        let killed = self.killed_ports();
        self.nodes
            .iter()
            .filter(move |node| !killed.contains(&node.port))
    }

    /// Polls `done` every 20 ms until it is true; at `deadline`, says it waited for `what`
    /// and how each live node saw the cluster.
    fn poll(
        &self,
        deadline: Instant,
        what: &str,
        mut done: impl FnMut() -> bool,
    ) -> Result<(), String> {
        while !done() {
            if Instant::now() >= deadline {
                return Err(self.timed_out(what));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Says that a wait for `what` timed out, and how each live node sees the cluster.
    fn timed_out(&self, what: &str) -> String {
        let views: Vec<String> = self
            .live_nodes()
            .map(|node| {
                let nodes = node.command(&["CLUSTER", "NODES"]);
                format!("node on port {}: {nodes:?}", node.port)
            })
            .collect();
        format!("timed out waiting for {what}\n{}", views.join("\n"))
    }
}

/// One line of `CLUSTER NODES`: a node as another node sees it.
#[derive(Debug)]
struct NodeLine {
    id: String,
    /// The port clients reach it on.
    port: u16,
    /// Whether this line is the answering node itself.
    myself: bool,
    flags: Vec<String>,
    /// The id of its master, for a replica.
    master: Option<String>,
    /// The slot ranges it serves, both ends included.
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn is_master(&self) -> bool {
        self.flags.iter().any(|flag| flag == "master")
    }

    /// No failure suspected, no handshake under way, a known address.
    fn is_healthy(&self) -> bool {
        !self
            .flags
            .iter()
            .any(|flag| matches!(flag.as_str(), "fail" | "fail?" | "handshake" | "noaddr"))
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| (first..=last).contains(&slot))
    }
}

/// The cluster as `node` sees it (`CLUSTER NODES`).
fn cluster_nodes(node: &RedisServer) -> Result<Vec<NodeLine>, String> {
    let text = node.command(&["CLUSTER", "NODES"])?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let bad = || format!("unexpected CLUSTER NODES line {line:?}");
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [
                id,
                address,
                flags,
                master,
                _ping,
                _pong,
                _epoch,
                _link,
                slots @ ..,
            ] = fields.as_slice()
            else {
                return Err(bad());
            };
            // `127.0.0.1:<port>@<bus port>[,<hostname>]`.
            let port = address
                .split('@')
                .next()
                .and_then(|host_port| host_port.rsplit_once(':'))
                .and_then(|(_, port)| port.parse().ok())
                .ok_or_else(bad)?;
            let flags: Vec<String> = flags.split(',').map(str::to_owned).collect();
            // Slots being moved show as `[slot->-id]` or `[slot-<-id]`: not served yet.
            let slots = slots
                .iter()
                .filter(|range| !range.starts_with('['))
                .map(|range| {
                    let (first, last) = range.split_once('-').unwrap_or((range, range));
                    Ok((
                        first.parse().map_err(|_| bad())?,
                        last.parse().map_err(|_| bad())?,
                    ))
                })
                .collect::<Result<_, String>>()?;
            Ok(NodeLine {
                id: (*id).to_owned(),
                port,
                myself: flags.iter().any(|flag| flag == "myself"),
                flags,
                master: (*master != "-").then(|| (*master).to_owned()),
                slots,
            })
        })
        .collect()
}

/// Runs `command` to its end, or kills it once `limit` has passed: what it printed on
/// stdout and stderr, or why it failed.
fn run_within(command: &mut Command, limit: Duration) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{command:?} could not run ({err}). {HOW_TO_INSTALL}"));
    // Read on threads, so that a full pipe never blocks the command.
    let readers = [
        read_on_thread(child.stdout.take()),
        read_on_thread(child.stderr.take()),
    ];
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let printed: Vec<String> = readers
        .into_iter()
        .map(|reader| reader.join().unwrap_or_default())
        .collect();
    let printed = printed.join("");
    match status {
        Some(status) if status.success() => Ok(printed),
        Some(status) => Err(format!("{command:?} failed ({status}): {printed}")),
        None => Err(format!(
            "{command:?} did not finish within {limit:?}: {printed}"
        )),
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn read_on_thread(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// Sends `args` as one RESP command to 127.0.0.1:`port` and reads a simple reply.
fn command(port: u16, args: &[&str]) -> Result<String, String> {
    commands(port, &[args])
}

/// Sends `commands` on one connection to 127.0.0.1:`port`, one after the other, and returns
/// the last one's reply (the first error, if one fails).
fn commands(port: u16, commands: &[&[&str]]) -> Result<String, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|err| err.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    for args in commands {
        let mut request = format!("*{}\r\n", args.len());
        for arg in *args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|err| err.to_string())?;
        reply = read_reply(&mut reader)?;
    }
    Ok(reply)
}

/// Reads one simple reply: a status, an integer or a bulk string (errors as `Err`).
fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<String, String> {
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

    #[test]
    fn a_command_that_hangs_is_stopped_at_its_limit() {
        let started = Instant::now();
        let mut hangs = Command::new("sleep");
        hangs.arg("30");
        let err = run_within(&mut hangs, Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let mut done = Command::new("echo");
        done.arg("made");
        assert_eq!(
            run_within(&mut done, Duration::from_secs(10)).unwrap(),
            "made\n"
        );
    }

    #[test]
    fn a_cluster_with_replicas_fails_over_every_way() {
        let cluster = RedisCluster::start_with_replicas();
        assert_eq!(cluster.nodes().len(), 6);
        let key = "{=name}";
        let first = cluster.master_of(key);
        first.command(&["SET", key, "1"]).unwrap();
        let second = cluster.replica_of(first);
        assert_ne!(first.port(), second.port());
        cluster.failover(second);
        assert_eq!(cluster.master_of(key).port(), second.port());
        assert_eq!(second.command(&["GET", key]).as_deref(), Ok("1"));
        // The old master follows the new one, and answers reads after READONLY.
        assert_eq!(cluster.replica_of(second).port(), first.port());
        let soon = || Instant::now() + Duration::from_secs(10);
        cluster
            .poll(soon(), "the old master to follow the new one", || {
                first.command_readonly(&["GET", key]).as_deref() == Ok("1")
            })
            .unwrap();
        cluster.force_failover(first);
        assert_eq!(cluster.master_of(key).port(), first.port());
        cluster
            .poll(soon(), "the replica to be in sync again", || {
                cluster.replicas_in_sync()
            })
            .unwrap();
        // Another shard's master dies: its replica takes over (see wait_for_promotion on
        // why not this shard's, just after two failovers).
        let other = (0..)
            .map(|n| format!("{{={n}}}"))
            .find(|key| cluster.master_of(key).port() != first.port())
            .unwrap();
        let dying = cluster.master_of(&other);
        dying.command(&["SET", &other, "2"]).unwrap();
        let heir = cluster.replica_of(dying);
        cluster
            .poll(soon(), "the write to reach the replica", || {
                heir.command_readonly(&["GET", &other]).as_deref() == Ok("2")
            })
            .unwrap();
        cluster.kill(dying);
        cluster.wait_for_promotion(heir, Instant::now() + Duration::from_secs(30));
        assert_eq!(cluster.master_of(&other).port(), heir.port());
        assert_eq!(heir.command(&["GET", &other]).as_deref(), Ok("2"));
    }
}
