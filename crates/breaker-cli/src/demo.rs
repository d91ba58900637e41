//! `breaker demo`: the breaker protecting a local backend that turns healthy, failing, then
//! healthy again, shown live; with `--ramp-up`, the share of calls let through after the
//! close growing while the backend warms up.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use breaker_core::{Action, AsyncBreaker, BreakerHandle, Policy, Transition};
use breaker_reqwest::{BreakerMiddleware, BreakerOpen};
use breaker_store_memory::MemoryStore;
use clap::Args;

use crate::backend::{Backend, Script};
use crate::operate::{AccessArgs, connect, store_failure};
use crate::run::{Recording, state_after};
use crate::{Failure, PolicyArgs, parse_duration};

/// `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long the demo runs; the backend fails through the middle part of it (before the
    /// ramp-up's time at the end) [default: 12s, plus --ramp-up].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// After the outage the backend comes back cold: it serves a tenth of its capacity and
    /// grows to all of it over this time, answering 503 beyond it [default: --ramp-up's
    /// time; without it, none: back at full strength at once].
    #[arg(long, value_parser = parse_duration)]
    warm_up: Option<Duration>,
    /// Share the breaker's state through this Redis store instead of memory (any address
    /// `--store` takes, given as one: redis://, redis+cluster:// or redis+sentinel://).
    #[arg(long, value_name = "ADDRESS")]
    redis: Option<String>,
    /// With --redis: add outcomes up in the process and send them once per this interval.
    #[arg(long, value_parser = parse_duration, requires = "redis")]
    batch: Option<Duration>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// Time between two calls of one client.
const PAUSE: Duration = Duration::from_millis(20);

fn demo_policy() -> Policy {
    // A short window and a modest rate: trips within a fraction of a second of the outage,
    // then probes after 1 s, 1.5 s, 2.25 s... until the backend answers again.
    Policy::builder()
        .window(Duration::from_secs(2))
        .buckets(20)
        .minimum_failures(5)
        .failure_rate(30.0)
        .open_for(Duration::from_secs(1))
        .backoff(1.5)
        .max_open_for(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    sent: AtomicU64,
    rejected: AtomicU64,
    failures: AtomicU64,
}

/// The calls made and sent over the last second, from samples of the counters.
#[derive(Default)]
struct LastSecond {
    samples: VecDeque<(Duration, u64, u64)>,
}

impl LastSecond {
    /// Takes a sample at `at`; returns the share of the last second's calls that were sent,
    /// in percent (`None` before any call).
    fn admitted(&mut self, counters: &Counters, at: Duration) -> Option<f64> {
        let (calls, sent) = (
            counters.calls.load(Ordering::SeqCst),
            counters.sent.load(Ordering::SeqCst),
        );
        self.samples.push_back((at, calls, sent));
        while self
            .samples
            .get(1)
            .is_some_and(|&(then, _, _)| then + Duration::from_secs(1) <= at)
        {
            self.samples.pop_front();
        }
        let &(_, calls_then, sent_then) = self.samples.front()?;
        let made = calls - calls_then;
        (made > 0).then(|| ((sent - sent_then) as f64 * 100.0 / made as f64).min(100.0))
    }
}

fn progress(counters: &Counters, state: &str, at: Duration, admitted: Option<f64>) -> String {
    let load = |n: &AtomicU64| n.load(Ordering::SeqCst);
    let sent = load(&counters.sent);
    let rate = if sent == 0 {
        0.0
    } else {
        load(&counters.failures) as f64 * 100.0 / sent as f64
    };
    let admitted = admitted.map_or("    -".to_owned(), |share| format!("{share:>4.0}%"));
    format!(
        "t={:>5.1}s  calls {:>5}  sent {:>5}  rejected {:>5}  failure rate {:>5.1}%  sent in the last second {admitted}  state {:<9}",
        at.as_secs_f64(),
        load(&counters.calls),
        sent,
        load(&counters.rejected),
        rate,
        state
    )
}

async fn drive<B: AsyncBreaker + 'static>(
    duration: Duration,
    args: &DemoArgs,
    backend: &Backend,
    breaker: Recording<B>,
) -> Result<(), Failure> {
    let transitions = breaker.transitions();
    let ramp_rejections = breaker.ramp_rejections();
    let ramp_up = breaker.policy().ramp_up();
    let name = breaker.name().to_owned();
    let middleware = BreakerMiddleware::new()
        .mount(&backend.url(), breaker)
        .map_err(|err| Failure::Failed(err.to_string()))?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let end = started + duration;
    let workers: Vec<_> = (0..args.clients)
        .map(|_| {
            let (client, counters, url) = (client.clone(), counters.clone(), backend.url());
            tokio::spawn(async move {
                while Instant::now() < end {
                    counters.calls.fetch_add(1, Ordering::SeqCst);
                    match client.get(&url).send().await {
                        Ok(response) if response.extensions().get::<BreakerOpen>().is_some() => {
                            counters.rejected.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(response) => {
                            counters.sent.fetch_add(1, Ordering::SeqCst);
                            if response.status().is_server_error() {
                                counters.failures.fetch_add(1, Ordering::SeqCst);
                            }
                            let _ = response.bytes().await;
                        }
                        Err(_) => {
                            counters.sent.fetch_add(1, Ordering::SeqCst);
                            counters.failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(PAUSE).await;
                }
            })
        })
        .collect();

    let terminal = std::io::stdout().is_terminal();
    let mut shown = 0;
    let mut state = "closed";
    // While a ramp runs after a close by probes: when it ends.
    let mut ramping_until: Option<Duration> = None;
    let mut last_second = LastSecond::default();
    let mut last_line = Instant::now();
    println!(
        "breaker {name:?} guarding {} ({} clients, {} s{}):",
        backend.url(),
        args.clients,
        duration.as_secs(),
        backend.warm_up().map_or(String::new(), |warm_up| format!(
            "; after the outage the backend warms up over {}",
            humantime::format_duration(warm_up)
        ))
    );
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = started.elapsed();
        let new: Vec<(Duration, Transition)> = {
            let all = transitions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            all[shown..].to_vec()
        };
        shown += new.len();
        for (at, transition) in &new {
            let was = state;
            state = state_after(transition);
            ramping_until = None;
            let detail = match transition {
                Transition::Tripped { open_for, .. } => {
                    format!(" for {}", humantime::format_duration(*open_for))
                }
                // A close by probes ramps; the demo has no operator to reset it.
                Transition::Closed { .. } if was == "half-open" => match ramp_up {
                    Some(ramp) => {
                        ramping_until = Some(*at + ramp);
                        format!(
                            "; the share of calls let through grows from 10 % to 100 % over {}",
                            humantime::format_duration(ramp)
                        )
                    }
                    None => String::new(),
                },
                _ => String::new(),
            };
            if terminal {
                print!("\r\x1b[K");
            }
            println!(
                "  -> at {:>5.2}s the breaker is {state}{detail}",
                at.as_secs_f64()
            );
        }
        if ramping_until.is_some_and(|until| now >= until) {
            ramping_until = None;
            if terminal {
                print!("\r\x1b[K");
            }
            println!(
                "  -> at {:>5.2}s the ramp is over: every call goes",
                now.as_secs_f64()
            );
        }
        let shown_state = if ramping_until.is_some() {
            "ramping"
        } else {
            state
        };
        let admitted = last_second.admitted(&counters, now);
        if terminal {
            print!("\r{}", progress(&counters, shown_state, now, admitted));
            let _ = std::io::stdout().flush();
        } else if last_line.elapsed() >= Duration::from_secs(1) {
            println!("{}", progress(&counters, shown_state, now, admitted));
            last_line = Instant::now();
        }
    }
    for worker in workers {
        let _ = worker.await;
    }
    if terminal {
        println!();
    }
    let load = |n: &AtomicU64| n.load(Ordering::SeqCst);
    let transitions = transitions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let count = |to: &str| {
        transitions
            .iter()
            .filter(|(_, t)| state_after(t) == to)
            .count()
    };
    println!("summary:");
    println!("  calls made        {}", load(&counters.calls));
    println!(
        "  reached backend   {} (the backend counted {})",
        load(&counters.sent),
        backend.hits()
    );
    println!("  rejected at once  {}", load(&counters.rejected));
    if ramp_up.is_some() {
        println!(
            "  of them, ramping  {} (outside the share let through after the close)",
            load(&ramp_rejections)
        );
    }
    println!("  failures seen     {}", load(&counters.failures));
    println!(
        "  transitions       {} trips, {} probes, {} recoveries; final state {}",
        count("open"),
        count("half-open"),
        count("closed"),
        transitions.last().map_or("closed", |(_, t)| state_after(t))
    );
    Ok(())
}

pub(crate) async fn demo(args: DemoArgs) -> Result<(), Failure> {
    let policy = args.policy.policy(demo_policy())?;
    let ramp_up = policy.ramp_up().unwrap_or_default();
    let duration = args
        .duration
        .unwrap_or_else(|| Duration::from_secs(12).saturating_add(ramp_up));
    // Healthy for the first quarter, failing until 60 %, healthy again to the end; with a
    // ramp, of the time before the ramp's length at the end (when that leaves enough), so the
    // ramp has time to run after the close.
    let course = match duration.checked_sub(ramp_up) {
        Some(course) if course >= ramp_up => course,
        _ => duration,
    };
    // Above what the clients offer (each makes a call every PAUSE at most), so the warm
    // backend serves them all.
    let per_client = (Duration::from_secs(1).as_millis() / PAUSE.as_millis()) as u32;
    let script = Script {
        failing_from: course.mul_f64(0.25),
        healthy_from: course.mul_f64(0.6),
        warm_up: args.warm_up.or(policy.ramp_up()),
        capacity: (args.clients as u32).saturating_mul(per_client + per_client / 5),
    };
    let backend = Backend::start(script).map_err(|err| {
        Failure::Failed(format!("cannot start the demo backend on 127.0.0.1: {err}"))
    })?;
    match &args.redis {
        None => {
            let breaker = MemoryStore::new()
                .breaker("demo-backend", policy)
                .map_err(store_failure)?;
            drive(duration, &args, &backend, Recording::new(breaker)).await
        }
        Some(url) => {
            let store = connect(
                std::slice::from_ref(url),
                "breaker",
                &AccessArgs::default(),
                None,
                args.batch,
            )
            .await?;
            let breaker = store
                .breaker("demo-backend", policy)
                .await
                .map_err(store_failure)?;
            breaker
                .operate(Action::Reset)
                .await
                .map_err(store_failure)?;
            drive(duration, &args, &backend, Recording::redis(breaker)).await
        }
    }
}
