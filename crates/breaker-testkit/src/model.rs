//! A naive reference model of SPEC section 4: every call kept in a plain list and recounted
//! from scratch at each step. Slow and obviously right; the core must agree with it.

use std::sync::Mutex;
use std::time::Duration;

use breaker_core::store::{self, PolicyMillis};
use breaker_core::{
    Action, Clock, Counts, ManualClock, Outcome, Override, Permit, PermitKind, Policy, Recorded,
    RejectReason, Rejected, Report, RetryAfterPolicy, Snapshot, State, Timestamp, Transition,
    TripCause,
};

use crate::Subject;

#[derive(Debug, Default)]
struct Inner {
    /// Every counted call: (time, failed).
    calls: Vec<(u64, bool)>,
    open: bool,
    half_open: bool,
    generation: u64,
    open_until: u64,
    open_ms: u64,
    successes: u32,
    /// Probe tickets with the end of their lease.
    probes: Vec<(u64, u64)>,
    tickets: u64,
    forced: Option<(Override, Option<u64>)>,
    /// When probes last closed the breaker (a ramp may follow), and the ramp's credit.
    closed_by_probes: Option<u64>,
    ramp: store::RampCredit,
}

/// The reference model, on a manual clock.
#[derive(Debug)]
pub struct Model {
    policy: Policy,
    clock: ManualClock,
    inner: Mutex<Inner>,
}

impl Model {
    /// A closed breaker with `policy`.
    pub fn new(policy: Policy, clock: ManualClock) -> Model {
        Model {
            policy,
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now().as_millis()
    }

    /// A report with no wait asked.
    fn record_outcome(&self, permit: Permit, outcome: Outcome) -> Recorded {
        let now = self.now();
        let policy = &self.policy;
        let elapsed = Duration::from_millis(now.saturating_sub(permit.started().as_millis()));
        let outcome = match (outcome, policy.slow_call()) {
            (Outcome::Success, Some(limit)) if elapsed > limit => Outcome::Failure,
            (outcome, _) => outcome,
        };
        let mut m = self.inner.lock().unwrap();
        let forced = m.forced(now);
        let done = |transition| Recorded::new(outcome, elapsed, transition);
        if permit.generation() != m.generation {
            return done(None);
        }
        match permit.kind() {
            PermitKind::Normal => {
                if outcome == Outcome::Ignored {
                    return done(None);
                }
                let failed = outcome == Outcome::Failure;
                m.calls.push((now, failed));
                let closed = !m.open && !m.half_open;
                if failed && closed && forced != Override::ForcedClosed {
                    let counts = m.counts(policy, now);
                    let rate_met = counts.failures as f64 * 100.0
                        >= policy.failure_rate() * counts.calls as f64;
                    // The model is one process, so one reporter: a larger quorum never trips.
                    if counts.failures >= policy.minimum_failures()
                        && counts.calls >= policy.minimum_calls()
                        && rate_met
                        && policy.minimum_reporters() <= 1
                    {
                        let open_ms = policy.open_for().as_millis() as u64;
                        return done(Some(m.open(now, open_ms, TripCause::Threshold(counts))));
                    }
                }
                done(None)
            }
            PermitKind::Probe { ticket } => {
                if !m.half_open {
                    return done(None);
                }
                m.probes.retain(|(t, _)| *t != ticket);
                match outcome {
                    Outcome::Ignored => done(None),
                    Outcome::Success => {
                        m.successes += 1;
                        if m.successes >= policy.successes_to_close() {
                            let closed = m.close();
                            m.closed_by_probes = Some(now);
                            done(Some(closed))
                        } else {
                            done(None)
                        }
                    }
                    Outcome::Failure if forced == Override::ForcedClosed => done(None),
                    Outcome::Failure => {
                        let max = policy.max_open_for().as_millis() as u64;
                        let next = ((m.open_ms as f64) * policy.backoff()).floor();
                        let open_ms = if next >= max as f64 { max } else { next as u64 };
                        done(Some(m.open(now, open_ms, TripCause::ProbeFailed)))
                    }
                }
            }
            _ => done(None),
        }
    }

    /// A report of a response that asked every caller to wait `wait`.
    fn record_waiting(&self, permit: Permit, outcome: Outcome, wait: Duration) -> Recorded {
        let now = self.now();
        let policy = &self.policy;
        let mut m = self.inner.lock().unwrap();
        let forced = m.forced(now);
        // SPEC section 3: honoured only by the current cycle, when the policy says so and
        // there is something to wait for; forced closed never trips.
        let honoured = policy.retry_after() == RetryAfterPolicy::Honour
            && !wait.is_zero()
            && permit.generation() == m.generation
            && permit.kind() != PermitKind::Unchecked
            && forced != Override::ForcedClosed;
        if !honoured {
            drop(m);
            return self.record_outcome(permit, outcome);
        }
        let elapsed = Duration::from_millis(now.saturating_sub(permit.started().as_millis()));
        let outcome = match (outcome, policy.slow_call()) {
            (Outcome::Success, Some(limit)) if elapsed > limit => Outcome::Failure,
            (outcome, _) => outcome,
        };
        match permit.kind() {
            PermitKind::Probe { ticket } => m.probes.retain(|(t, _)| *t != ticket),
            _ if outcome != Outcome::Ignored => m.calls.push((now, outcome == Outcome::Failure)),
            _ => {}
        }
        let asked = wait.as_nanos().div_ceil(1_000_000) as u64;
        let open_ms = asked.min(policy.max_open_for().as_millis() as u64);
        let transition = if m.open && m.open_until >= now + open_ms {
            None
        } else {
            Some(m.open(now, open_ms, TripCause::RetryAfter))
        };
        Recorded::new(outcome, elapsed, transition)
    }
}

impl Inner {
    /// An event at `t` still counts at `now` while `now` is before the end of the bucket that
    /// is `buckets` buckets after the event's own.
    fn counts(&self, policy: &Policy, now: u64) -> Counts {
        let width = policy.bucket_millis();
        let buckets = u64::from(policy.buckets());
        let live = self
            .calls
            .iter()
            .filter(|(t, _)| now / width < t / width + buckets);
        let mut counts = Counts::default();
        for (_, failed) in live {
            counts.calls += 1;
            counts.failures += u64::from(*failed);
        }
        counts
    }

    fn forced(&mut self, now: u64) -> Override {
        match self.forced {
            Some((_, Some(until))) if until <= now => {
                self.forced = None;
                Override::Auto
            }
            Some((mode, _)) => mode,
            None => Override::Auto,
        }
    }

    fn open(&mut self, now: u64, open_ms: u64, cause: TripCause) -> Transition {
        self.generation += 1;
        self.open = true;
        self.half_open = false;
        self.open_ms = open_ms;
        self.open_until = now + open_ms;
        self.successes = 0;
        self.probes.clear();
        self.closed_by_probes = None;
        Transition::Tripped {
            generation: self.generation,
            open_until: Timestamp::from_millis(self.open_until),
            open_for: Duration::from_millis(open_ms),
            cause,
        }
    }

    fn close(&mut self) -> Transition {
        let ended = self.generation;
        self.generation += 1;
        self.open = false;
        self.half_open = false;
        self.open_ms = 0;
        self.successes = 0;
        self.probes.clear();
        self.calls.clear();
        self.closed_by_probes = None;
        self.ramp = store::RampCredit::new();
        Transition::Closed { generation: ended }
    }
}

impl Subject for Model {
    fn acquire(&self) -> Result<Permit, Rejected> {
        let now = self.now();
        let at = Timestamp::from_millis(now);
        let policy = &self.policy;
        let mut m = self.inner.lock().unwrap();
        match m.forced(now) {
            Override::ForcedOpen => {
                let retry = match m.forced {
                    Some((_, Some(until))) => Duration::from_millis(until - now),
                    _ => policy.open_for(),
                };
                return Err(Rejected::new(RejectReason::ForcedOpen, retry));
            }
            Override::ForcedClosed => {
                return Ok(store::permit(m.generation, PermitKind::Normal, at, false));
            }
            _ => {}
        }
        if !m.open && !m.half_open {
            // SPEC section 4, ramping up: within `ramp_up` of a close by probes, only the
            // share the ramp has reached goes.
            if let (Some(from), Some(ramp)) = (m.closed_by_probes, policy.ramp_up()) {
                let ramp_ms = ramp.as_millis() as u64;
                let elapsed = now.saturating_sub(from);
                if elapsed < ramp_ms {
                    let share = store::ramp_share(elapsed, ramp_ms);
                    if !m.ramp.admit(share) {
                        return Err(Rejected::new(
                            RejectReason::RampingUp,
                            store::ramp_retry_after(elapsed, ramp_ms),
                        ));
                    }
                } else {
                    // The ramp is over, for good: a clock stepping back later does not
                    // start it again.
                    m.closed_by_probes = None;
                }
            }
            return Ok(store::permit(m.generation, PermitKind::Normal, at, false));
        }
        let mut half_opened = false;
        if m.open {
            if now < m.open_until {
                return Err(Rejected::new(
                    RejectReason::Open,
                    Duration::from_millis(m.open_until - now),
                ));
            }
            m.open = false;
            m.half_open = true;
            m.successes = 0;
            m.probes.clear();
            half_opened = true;
        }
        m.probes.retain(|(_, until)| *until > now);
        if m.probes.len() < policy.half_open_probes() as usize {
            m.tickets += 1;
            let ticket = m.tickets;
            m.probes
                .push((ticket, now + policy.probe_lease().as_millis() as u64));
            Ok(store::permit(
                m.generation,
                PermitKind::Probe { ticket },
                at,
                half_opened,
            ))
        } else {
            let first = m
                .probes
                .iter()
                .map(|(_, until)| *until)
                .min()
                .unwrap_or(now);
            Err(Rejected::new(
                RejectReason::ProbesBusy,
                Duration::from_millis(first - now),
            ))
        }
    }

    fn record(&self, permit: Permit, report: Report) -> Recorded {
        match report.retry_after {
            Some(wait) => self.record_waiting(permit, report.outcome, wait),
            None => self.record_outcome(permit, report.outcome),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let now = self.now();
        let m = self.inner.lock().unwrap();
        let (override_mode, override_until) = match m.forced {
            Some((_, Some(until))) if until <= now => (Override::Auto, None),
            Some((mode, until)) => (mode, until.map(Timestamp::from_millis)),
            None => (Override::Auto, None),
        };
        let state = if m.open && now < m.open_until {
            State::Open
        } else if m.open || m.half_open {
            State::HalfOpen
        } else {
            State::Closed
        };
        let mut snapshot = CoreSnapshot::default_closed();
        snapshot.state = state;
        snapshot.override_mode = override_mode;
        snapshot.override_until = override_until;
        snapshot.generation = m.generation;
        snapshot.open_until = m.open.then(|| Timestamp::from_millis(m.open_until));
        snapshot.counts = m.counts(&self.policy, now);
        snapshot.probes_in_flight =
            m.probes.iter().filter(|(_, until)| *until > now).count() as u32;
        let closed = !m.open && !m.half_open && override_mode == Override::Auto;
        snapshot.ramping_until = match (m.closed_by_probes, self.policy.ramp_up()) {
            (Some(from), Some(ramp)) if closed && now < from + ramp.as_millis() as u64 => {
                Some(Timestamp::from_millis(from + ramp.as_millis() as u64))
            }
            _ => None,
        };
        snapshot
    }

    fn operate(&self, action: Action) -> Option<Transition> {
        let now = self.now();
        let mut m = self.inner.lock().unwrap();
        match action {
            Action::Trip => {
                let open_ms = self.policy.open_for().as_millis() as u64;
                Some(m.open(now, open_ms, TripCause::Operator))
            }
            Action::Reset => {
                let was_closed = !m.open && !m.half_open;
                let transition = m.close();
                (!was_closed).then_some(transition)
            }
            Action::Override { mode, duration } => {
                m.forced = match mode {
                    Override::Auto => None,
                    // Longer than the longest duration a store keeps means forever.
                    mode => Some((
                        mode,
                        duration
                            .filter(|d| *d <= breaker_core::MAX_DURATION)
                            .map(|d| now + d.as_millis() as u64),
                    )),
                };
                None
            }
            other => panic!("the model knows no action {other:?}"),
        }
    }
}

/// `Snapshot` is non-exhaustive; the model starts from the core's view of a fresh breaker.
struct CoreSnapshot;

impl CoreSnapshot {
    fn default_closed() -> Snapshot {
        let policy = Policy::default();
        let window = breaker_core::store::BucketWindow::new(&policy);
        breaker_core::store::Circuit::new().snapshot(&policy, Timestamp::ZERO, &window)
    }
}
