//! A backend's capacity as a model with time passed in: it serves up to a number of requests
//! in any one second and answers the rest with an error; it can go down (every request fails)
//! and come back cold, its capacity growing from a share of the full one to all of it over a
//! warm-up. The test server ([`crate::http_server::TestServer`]) drives it with the time since
//! it started; tests drive it with any times they like.

use std::collections::VecDeque;
use std::time::Duration;

/// How much a backend serves: up to `per_second` requests in any one second once warm. After
/// an outage it starts cold at `cold_share` of that and grows in a straight line to all of it
/// over `warm_up`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Capacity {
    /// Requests served in any one second once warm.
    pub per_second: u32,
    /// The share of `per_second` served right after an outage, from 0 to 1.
    pub cold_share: f64,
    /// How long the limit takes to grow from the cold share to all of `per_second`.
    pub warm_up: Duration,
}

impl Capacity {
    /// `per_second` requests a second, at full strength again as soon as an outage ends.
    pub fn new(per_second: u32) -> Capacity {
        Capacity {
            per_second,
            cold_share: 1.0,
            warm_up: Duration::ZERO,
        }
    }

    /// This capacity, starting at `cold_share` of itself after an outage (clamped to 0..=1)
    /// and reaching all of it `warm_up` later.
    #[must_use]
    pub fn warming(self, cold_share: f64, warm_up: Duration) -> Capacity {
        Capacity {
            cold_share: if cold_share.is_nan() {
                1.0
            } else {
                cold_share.clamp(0.0, 1.0)
            },
            warm_up,
            ..self
        }
    }

    /// The most requests served in one second, `since_up` after the end of the last outage
    /// (`None`: the backend has never been down, so it is warm).
    pub fn limit(&self, since_up: Option<Duration>) -> u32 {
        // A tiny allowance keeps shares such as 0.57 of 100 (56.999... in binary) at 57.
        let cold = (f64::from(self.per_second) * self.cold_share + 1e-9).floor() as u32;
        let cold = cold.min(self.per_second);
        match since_up {
            Some(since) if since < self.warm_up => {
                // The growth in whole nanoseconds, so the curve is exact.
                let grown =
                    u128::from(self.per_second - cold) * since.as_nanos() / self.warm_up.as_nanos();
                cold + grown as u32
            }
            _ => self.per_second,
        }
    }
}

/// What the model does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Served: within the capacity, the backend up.
    Served,
    /// Refused: this second's capacity is used up.
    OverCapacity,
    /// Refused: the backend is down.
    Down,
}

/// Which requests a backend serves over time: its [`Capacity`] (or none: everything is
/// served), whether it is down, and the requests served in the last second.
///
/// Times are offsets from any fixed start, passed in by the caller, and must not go back.
/// Memory is bounded by the capacity's `per_second`.
#[derive(Clone, Debug, Default)]
pub struct CapacityModel {
    capacity: Option<Capacity>,
    down: bool,
    /// When the last outage ended; `None` while the backend has never been down.
    up_since: Option<Duration>,
    /// When each request served in the last second was served, oldest first.
    served: VecDeque<Duration>,
}

impl CapacityModel {
    /// A backend that is up, with this capacity (`None`: it serves every request).
    pub fn new(capacity: Option<Capacity>) -> CapacityModel {
        CapacityModel {
            capacity,
            ..CapacityModel::default()
        }
    }

    /// Changes the capacity from now on; what was served in the last second still counts.
    pub fn set_capacity(&mut self, capacity: Option<Capacity>) {
        self.capacity = capacity;
    }

    /// The capacity in force.
    pub fn capacity(&self) -> Option<Capacity> {
        self.capacity
    }

    /// Takes the backend down: every request fails until [`CapacityModel::bring_up`].
    pub fn take_down(&mut self) {
        self.down = true;
    }

    /// Ends an outage at `now`: the backend serves again, starting cold (see [`Capacity`]).
    /// A backend that is up stays as it is.
    pub fn bring_up(&mut self, now: Duration) {
        if self.down {
            self.down = false;
            self.up_since = Some(now);
        }
    }

    /// Whether the backend is down.
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// The most requests the backend serves in the second that ends at `now` (`None`:
    /// unlimited; 0 while it is down).
    pub fn limit(&self, now: Duration) -> Option<u32> {
        if self.down {
            return Some(0);
        }
        let since_up = self.up_since.map(|up| now.saturating_sub(up));
        self.capacity.map(|capacity| capacity.limit(since_up))
    }

    /// Decides one request arriving at `now`, and counts it if it is served.
    pub fn admit(&mut self, now: Duration) -> Verdict {
        if self.down {
            return Verdict::Down;
        }
        let Some(limit) = self.limit(now) else {
            return Verdict::Served;
        };
        // The second that ends at `now` excludes its start: a request served exactly one
        // second ago no longer counts.
        while self
            .served
            .front()
            .is_some_and(|&at| at + Duration::from_secs(1) <= now)
        {
            self.served.pop_front();
        }
        if self.served.len() < limit as usize {
            self.served.push_back(now);
            Verdict::Served
        } else {
            Verdict::OverCapacity
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// How many of `count` requests, evenly spread over `[from, from + span)`, are served.
    fn served(model: &mut CapacityModel, from: Duration, span: Duration, count: u32) -> u32 {
        (0..count)
            .filter(|&i| {
                model.admit(from + span.mul_f64(f64::from(i) / f64::from(count))) == Verdict::Served
            })
            .count() as u32
    }

    #[test]
    fn without_a_capacity_every_request_is_served_until_the_backend_goes_down() {
        let mut model = CapacityModel::new(None);
        assert_eq!(served(&mut model, ms(0), ms(10), 10_000), 10_000);
        assert_eq!(model.limit(ms(10)), None);
        model.take_down();
        assert_eq!(model.admit(ms(20)), Verdict::Down);
        assert_eq!(model.limit(ms(20)), Some(0));
        model.bring_up(ms(30));
        assert_eq!(model.admit(ms(30)), Verdict::Served);
    }

    #[test]
    fn at_most_the_capacity_is_served_in_any_one_second() {
        let mut model = CapacityModel::new(Some(Capacity::new(10)));
        // A burst: the first ten go, the rest of the second is refused.
        assert_eq!(served(&mut model, ms(0), ms(1), 15), 10);
        assert_eq!(model.admit(ms(500)), Verdict::OverCapacity);
        assert_eq!(model.admit(ms(999)), Verdict::OverCapacity);
        // One second after the burst its requests no longer count.
        assert_eq!(served(&mut model, ms(1000), ms(1), 15), 10);
        // Offered 100 a second for ten seconds, evenly: 10 a second are served.
        let mut model = CapacityModel::new(Some(Capacity::new(10)));
        assert_eq!(served(&mut model, ms(0), ms(10_000), 1000), 100);
        // Offered less than the capacity, everything is served.
        let mut model = CapacityModel::new(Some(Capacity::new(10)));
        assert_eq!(served(&mut model, ms(0), ms(10_000), 90), 90);
    }

    #[test]
    fn after_an_outage_the_capacity_warms_up_in_a_straight_line() {
        let capacity = Capacity::new(100).warming(0.1, Duration::from_secs(10));
        assert_eq!(capacity.limit(None), 100);
        let curve: Vec<u32> = (0..=12)
            .map(|second| capacity.limit(Some(Duration::from_secs(second))))
            .collect();
        assert_eq!(
            curve,
            [10, 19, 28, 37, 46, 55, 64, 73, 82, 91, 100, 100, 100]
        );

        let mut model = CapacityModel::new(Some(capacity));
        assert_eq!(model.limit(ms(0)), Some(100), "warm until the first outage");
        model.take_down();
        assert_eq!(model.limit(ms(1000)), Some(0));
        assert_eq!(model.admit(ms(1000)), Verdict::Down);
        model.bring_up(ms(5000));
        assert_eq!(model.limit(ms(5000)), Some(10));
        assert_eq!(model.limit(ms(10_000)), Some(55));
        assert_eq!(model.limit(ms(15_000)), Some(100));
        // Offered 200 a second from the return on, each second serves what the curve allows
        // at its end (the window's requests are those of the last second).
        let mut per_second = Vec::new();
        for second in 0..12 {
            let from = ms(5000 + second * 1000);
            per_second.push(served(&mut model, from, ms(1000), 200));
        }
        for (second, &count) in per_second.iter().enumerate() {
            let at_end = capacity.limit(Some(ms(second as u64 * 1000 + 995)));
            assert!(
                count <= at_end,
                "second {second}: {count} served above {at_end}"
            );
            assert!(
                count + 10 >= at_end,
                "second {second}: {count} served, far below {at_end}"
            );
        }
        // Bringing a backend that is up "up" again does not make it cold.
        model.bring_up(ms(30_000));
        assert_eq!(model.limit(ms(30_000)), Some(100));
    }

    #[test]
    fn odd_shares_and_instant_warm_ups_stay_within_bounds() {
        assert_eq!(
            Capacity::new(10).warming(-1.0, ms(0)).limit(Some(ms(0))),
            10
        );
        let cold = Capacity::new(10).warming(-1.0, ms(1000));
        assert_eq!(cold.limit(Some(ms(0))), 0);
        assert_eq!(cold.limit(Some(ms(500))), 5);
        assert_eq!(
            Capacity::new(10).warming(7.0, ms(1000)).limit(Some(ms(0))),
            10
        );
        assert_eq!(
            Capacity::new(10)
                .warming(f64::NAN, ms(1000))
                .limit(Some(ms(0))),
            10
        );
        assert_eq!(
            Capacity::new(100)
                .warming(0.57, ms(1000))
                .limit(Some(ms(0))),
            57
        );
        // A cold share of zero serves nothing right after the outage.
        let mut model = CapacityModel::new(Some(cold));
        model.take_down();
        model.bring_up(ms(0));
        assert_eq!(model.admit(ms(0)), Verdict::OverCapacity);
        assert_eq!(model.admit(ms(200)), Verdict::Served);
    }
}
