//! The backend's own word: how long a 429 or 503 asks every caller to wait (SPEC section 3).

use std::time::{Duration, SystemTime};

/// The wait a response with `status` and `headers` asks for, read at `now`: only a 429 or 503
/// with a `Retry-After` of delta-seconds or an HTTP date in the future; a date in the past,
/// a zero wait, several values or garbage ask for nothing.
pub(crate) fn requested_wait(
    status: u16,
    headers: &http::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let mut values = headers.get_all(http::header::RETRY_AFTER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still a (very long) wait; the policy caps it.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .ok()?
    };
    (!wait.is_zero()).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(status: u16, values: &[&str]) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append(http::header::RETRY_AFTER, value.parse().unwrap());
        }
        // 2015-10-21 07:28:00 UTC
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        requested_wait(status, &headers, now)
    }

    #[test]
    fn seconds_and_dates_on_429_and_503_only() {
        assert_eq!(wait(503, &["3"]), Some(Duration::from_secs(3)));
        assert_eq!(wait(429, &[" 120 "]), Some(Duration::from_secs(120)));
        assert_eq!(
            wait(503, &["Wed, 21 Oct 2015 07:28:30 GMT"]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            wait(503, &["99999999999999999999999"]),
            Some(Duration::from_secs(u64::MAX))
        );
        for status in [200, 500, 502, 504] {
            assert_eq!(wait(status, &["3"]), None, "status {status}");
        }
    }

    #[test]
    fn the_past_zero_garbage_and_several_values_ask_nothing() {
        for values in [
            &["Wed, 21 Oct 2015 07:27:00 GMT"][..],
            &["Wed, 21 Oct 2015 07:28:00 GMT"],
            &["0"],
            &["-3"],
            &["3.5"],
            &["soon"],
            &[""],
            &["3", "4"],
            &[],
        ] {
            assert_eq!(wait(503, values), None, "{values:?}");
        }
    }
}
