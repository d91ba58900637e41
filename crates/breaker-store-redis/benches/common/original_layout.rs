//! The original Python library's Redis layout, for side-by-side benches: one sorted-set member
//! per call, read and trimmed on every call.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// One call of the original library's layout: a GET of the last-open time, a pipeline of
/// ZREMRANGEBYSCORE + ZADD + ZCARD over `window`, then a SET: three round trips.
pub(crate) async fn call(
    conn: &mut MultiplexedConnection,
    key: &str,
    member: u64,
    window: Duration,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let _: Option<String> = redis::cmd("GET")
        .arg(format!("{key}:last-open"))
        .query_async(conn)
        .await
        .unwrap();
    let (_, _, _count): (i64, i64, i64) = redis::pipe()
        .cmd("ZREMRANGEBYSCORE")
        .arg(key)
        .arg("-inf")
        .arg(now - window.as_secs_f64())
        .cmd("ZADD")
        .arg(key)
        .arg(now)
        .arg(member)
        .cmd("ZCARD")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{key}:last-call"))
        .arg(now)
        .query_async(conn)
        .await
        .unwrap();
}
