//! Several OS processes, each with several tasks, recording into one breaker in Redis: the
//! counters are exact, and of failures racing past the threshold exactly one process reports
//! the trip. The test binary runs itself as the child processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use breaker_core::{AsyncBreaker, Counts, Outcome, Permit, Policy, Transition};
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use breaker_testkit::redis_server::RedisServer;

const PROCESSES: usize = 3;
const TASKS: usize = 4;
const CALLS: usize = 250;
const RACING_PERMITS: usize = 50;

fn policies() -> (Policy, Policy) {
    let never = Policy::builder().minimum_failures(1 << 40).build().unwrap();
    let racing = Policy::builder()
        .minimum_failures(100)
        .failure_rate(50.0)
        .build()
        .unwrap();
    (never, racing)
}

fn main() {
    match std::env::var("BREAKER_TEST_CHILD") {
        Ok(url) => child(&url),
        Err(_) => parent(),
    }
}

fn parent() {
    let server = RedisServer::start();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .env("BREAKER_TEST_CHILD", server.url())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|child| BufReader::new(child.stdout.take().unwrap()).lines())
        .collect();
    // Every child has counted its calls and holds its racing permits: let them race.
    for output in &mut outputs {
        assert_eq!(output.next().unwrap().unwrap(), "ready");
    }
    for child in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let mut trips = 0;
    for output in &mut outputs {
        let line = output.next().unwrap().unwrap();
        trips += line
            .strip_prefix("trips ")
            .unwrap()
            .parse::<usize>()
            .unwrap();
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (never, racing) = policies();
    runtime.block_on(async {
        let store = AsyncRedisStore::connect(
            RedisConfig::standalone(server.url()).timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        let counted = store
            .breaker("counted", never)
            .await
            .unwrap()
            .snapshot()
            .await
            .unwrap();
        let calls = (PROCESSES * TASKS * CALLS) as u64;
        assert_eq!(
            counted.counts,
            Counts {
                calls,
                failures: calls / 2
            },
            "no update lost"
        );
        let raced = store
            .breaker("raced", racing)
            .await
            .unwrap()
            .snapshot()
            .await
            .unwrap();
        assert_eq!(raced.generation, 1);
    });
    assert_eq!(trips, 1, "exactly one process reports the trip");
    println!("processes: 2 passed, 0 failed");
}

fn child(url: &str) {
    let runtime = breaker_testkit::runtime();
    let (never, racing) = policies();
    runtime.block_on(async {
        let store =
            AsyncRedisStore::connect(RedisConfig::standalone(url).timeout(Duration::from_secs(2)))
                .await
                .unwrap();
        let counted = store.breaker("counted", never).await.unwrap();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let counted = counted.clone();
                tokio::spawn(async move {
                    for call in 0..CALLS {
                        let permit = counted.acquire().await.unwrap();
                        let outcome = if (call + task) % 2 == 0 {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        };
                        counted.record(permit, outcome.into()).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }

        let raced = store.breaker("raced", racing).await.unwrap();
        let mut permits: Vec<Permit> = Vec::new();
        for _ in 0..TASKS * RACING_PERMITS {
            permits.push(raced.acquire().await.unwrap());
        }
        println!("ready");
        std::io::stdout().flush().unwrap();
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let batch: Vec<Permit> = permits.drain(..RACING_PERMITS).collect();
            let raced = raced.clone();
            tasks.push(tokio::spawn(async move {
                let mut trips = 0;
                for permit in batch {
                    let recorded = raced.record(permit, Outcome::Failure.into()).await;
                    if matches!(recorded.transition, Some(Transition::Tripped { .. })) {
                        trips += 1;
                    }
                }
                trips
            }));
        }
        let mut trips = 0;
        for task in tasks {
            trips += task.await.unwrap();
        }
        println!("trips {trips}");
    });
}
