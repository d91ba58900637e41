//! `breaker demo`: the breaker protecting a local backend that turns healthy, failing, then
//! healthy again, shown live.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use breaker_core::{AsyncBreaker, Policy, Transition};
use breaker_reqwest::{BreakerMiddleware, Rejection};
use breaker_store_memory::MemoryStore;
use clap::Args;

use crate::backend::{Backend, Script};
use crate::operate::{TlsArgs, connect, store_failure};
use crate::run::{Recording, state_after};
use crate::{Failure, PolicyArgs, parse_duration};

/// `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long the demo runs; the backend fails through the middle part of it.
    #[arg(long, value_parser = parse_duration, default_value = "12s")]
    duration: Duration,
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

fn progress(counters: &Counters, state: &str, at: Duration) -> String {
    let load = |n: &AtomicU64| n.load(Ordering::SeqCst);
    let sent = load(&counters.sent);
    let rate = if sent == 0 {
        0.0
    } else {
        load(&counters.failures) as f64 * 100.0 / sent as f64
    };
    format!(
        "t={:>5.1}s  calls {:>5}  sent {:>5}  rejected {:>5}  failure rate {:>5.1}%  state {:<9}",
        at.as_secs_f64(),
        load(&counters.calls),
        sent,
        load(&counters.rejected),
        rate,
        state
    )
}

async fn drive<B: AsyncBreaker + 'static>(
    args: &DemoArgs,
    backend: &Backend,
    breaker: Recording<B>,
) -> Result<(), Failure> {
    let transitions = breaker.transitions();
    let name = breaker.name().to_owned();
    let middleware = BreakerMiddleware::new()
        .mount(&backend.url(), breaker)
        .map_err(|err| Failure::Failed(err.to_string()))?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let end = started + args.duration;
    let workers: Vec<_> = (0..args.clients)
        .map(|_| {
            let (client, counters, url) = (client.clone(), counters.clone(), backend.url());
            tokio::spawn(async move {
                while Instant::now() < end {
                    counters.calls.fetch_add(1, Ordering::SeqCst);
                    match client.get(&url).send().await {
                        Ok(response) if response.extensions().get::<Rejection>().is_some() => {
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
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();

    let terminal = std::io::stdout().is_terminal();
    let mut shown = 0;
    let mut state = "closed";
    let mut last_line = Instant::now();
    println!(
        "breaker {name:?} guarding {} ({} clients, {} s):",
        backend.url(),
        args.clients,
        args.duration.as_secs()
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
            state = state_after(transition);
            let detail = match transition {
                Transition::Tripped { open_for, .. } => {
                    format!(" for {}", humantime::format_duration(*open_for))
                }
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
        if terminal {
            print!("\r{}", progress(&counters, state, now));
            let _ = std::io::stdout().flush();
        } else if last_line.elapsed() >= Duration::from_secs(1) {
            println!("{}", progress(&counters, state, now));
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
    // Healthy for the first quarter, failing until 60 %, healthy again to the end.
    let script = Script {
        failing_from: args.duration.mul_f64(0.25),
        healthy_from: args.duration.mul_f64(0.6),
    };
    let backend = Backend::start(script).map_err(|err| {
        Failure::Failed(format!("cannot start the demo backend on 127.0.0.1: {err}"))
    })?;
    match &args.redis {
        None => {
            let breaker = MemoryStore::new()
                .breaker("demo-backend", policy)
                .map_err(store_failure)?;
            drive(&args, &backend, Recording::new(breaker)).await
        }
        Some(url) => {
            let store = connect(
                std::slice::from_ref(url),
                "breaker",
                &TlsArgs::default(),
                None,
                args.batch,
            )
            .await?;
            let breaker = store
                .breaker("demo-backend", policy)
                .await
                .map_err(store_failure)?;
            breaker.reset().await.map_err(store_failure)?;
            drive(&args, &backend, Recording::redis(breaker)).await
        }
    }
}
