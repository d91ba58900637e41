//! Who may reach the dashboard: the `Host` a request names (against DNS rebinding), the
//! `Origin` of a POST, and how many wrong tokens one client address may try.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed token attempts one client address may make per [`FAILURE_WINDOW`].
pub(crate) const FAILURES_ALLOWED: u32 = 5;
/// The window over which failed attempts are counted; a client that used them up waits
/// until the window it started ends.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses remembered at most: past this, windows that ended are forgotten, and if
/// none has, the oldest is.
const CLIENTS_REMEMBERED: usize = 10_000;

/// The host names a request may name in `Host`: loopback names always, the address the
/// dashboard listens on, and those allowed by the operator.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hosts {
    allowed: Vec<String>,
}

impl Hosts {
    /// Also allows `host` (a name or an address, with or without a port; any port matches).
    pub(crate) fn allow(&mut self, host: &str) {
        let name = host_name(host).to_ascii_lowercase();
        if !name.is_empty() && !self.allowed.contains(&name) {
            self.allowed.push(name);
        }
    }

    /// Whether a `Host` header value names this dashboard.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.allowed.contains(&name)
    }
}

/// The host of a `host[:port]` (an IPv6 address stays in its brackets).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether `origin` (a POST's `Origin`) is the page's own origin: the same host and port as
/// the request's `Host`. `null` and anything else is foreign.
pub(crate) fn same_origin(origin: &str, host: &str) -> bool {
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    rest.eq_ignore_ascii_case(host.trim())
}

/// Failed token attempts per client address.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    clients: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// The key of a client whose address the server did not tell (served without connect
/// info): every such client shares one allowance.
pub(crate) fn client_ip(address: Option<SocketAddr>) -> IpAddr {
    address.map_or(IpAddr::from([0, 0, 0, 0]), |address| address.ip())
}

impl Attempts {
    /// How long `client` must wait before trying again, if it used up its attempts.
    pub(crate) fn blocked(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let clients = self.lock();
        let (start, failures) = clients.get(&client)?;
        let ends = *start + FAILURE_WINDOW;
        (*failures >= FAILURES_ALLOWED && ends > now).then(|| ends - now)
    }

    /// Counts a failed attempt of `client`.
    pub(crate) fn failed(&self, client: IpAddr, now: Instant) {
        let mut clients = self.lock();
        if clients.len() >= CLIENTS_REMEMBERED && !clients.contains_key(&client) {
            clients.retain(|_, (start, _)| *start + FAILURE_WINDOW > now);
            if clients.len() >= CLIENTS_REMEMBERED {
                let oldest = clients.iter().min_by_key(|(_, (start, _))| *start);
                if let Some(oldest) = oldest.map(|(ip, _)| *ip) {
                    clients.remove(&oldest);
                }
            }
        }
        let entry = clients.entry(client).or_insert((now, 0));
        if entry.0 + FAILURE_WINDOW <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        // A panic elsewhere cannot leave a count half-written.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_allowed_hosts_pass_and_others_do_not() {
        let mut hosts = Hosts::default();
        for ok in [
            "localhost:7878",
            "127.0.0.1:1",
            "127.9.9.9",
            "[::1]:80",
            "app.localhost",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for foreign in [
            "evil.example:7878",
            "10.0.0.5",
            "",
            "localhost.evil.example",
        ] {
            assert!(!hosts.allows(foreign), "{foreign}");
        }
        hosts.allow("Dash.Example.org:443");
        hosts.allow("10.0.0.5:7878");
        assert!(hosts.allows("dash.example.org"));
        assert!(hosts.allows("10.0.0.5:7878"));
    }

    #[test]
    fn only_the_pages_own_origin_may_post() {
        assert!(same_origin("http://127.0.0.1:7878", "127.0.0.1:7878"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:7878"));
        assert!(!same_origin("null", "127.0.0.1:7878"));
        assert!(!same_origin("http://127.0.0.1:7879", "127.0.0.1:7878"));
    }

    #[test]
    fn a_client_that_guessed_too_often_waits_for_its_window() {
        let attempts = Attempts::default();
        let start = Instant::now();
        let client = client_ip(Some(SocketAddr::from(([10, 0, 0, 1], 5))));
        for _ in 0..FAILURES_ALLOWED {
            assert_eq!(attempts.blocked(client, start), None);
            attempts.failed(client, start);
        }
        assert_eq!(attempts.blocked(client, start), Some(FAILURE_WINDOW));
        let other = client_ip(None);
        assert_eq!(attempts.blocked(other, start), None);
        assert_eq!(attempts.blocked(client, start + FAILURE_WINDOW), None);
    }
}
