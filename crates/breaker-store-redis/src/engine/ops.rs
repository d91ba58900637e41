//! Every store operation as steps without IO: an operation says what to send next and takes
//! the reply, until it is done. The async and blocking stores are two thin transports around
//! this: each only sends what an operation asks (within the store's timeout) and hands it the
//! reply, in one loop of its own.

use std::collections::{HashMap, VecDeque};

use breaker_core::store::remote::BatchDue;
use breaker_core::{
    Action, Bucket, HistoryEntry, Permit, Recorded, Rejected, Report, Snapshot, StoreError,
    StoreErrorKind, Timestamp, Transition,
};
use redis::{Cmd, FromRedisValue, ScriptInvocation, Value};

use super::{Engine, RecordContext, RecordPlan, Take};
use crate::history;
use crate::keys::Keys;
use crate::registry::{self, BreakerInfo};
use crate::script::{self, Op};
use crate::settings::Settings;
use crate::stored::{self, Needed, Stored};

/// What to send.
pub(crate) enum Request {
    /// A call of the breaker script.
    Script(ScriptInvocation<'static>),
    /// A plain command.
    Command(Cmd),
    /// Plain commands on one key (one Cluster slot), sent together; the reply is an array
    /// of their replies.
    Pipeline(redis::Pipeline),
}

/// A request, with what it is for (for errors and logs).
pub(crate) struct Ask {
    pub(crate) request: Request,
    pub(crate) what: &'static str,
}

/// What an operation does next.
pub(crate) enum Step<T> {
    /// Send this, then hand the reply to [`Operation::step`].
    Ask(Ask),
    /// The operation is done.
    Done(T),
}

/// An operation on its way: what a transport sends next, or what it came to, and whether
/// Redis answered the last request (false if none was sent).
pub(crate) struct Run<O: Operation> {
    op: O,
    reply: Option<Result<Value, StoreError>>,
    answered: bool,
}

impl<O: Operation> Run<O> {
    pub(crate) fn new(op: O) -> Run<O> {
        Run {
            op,
            reply: None,
            answered: false,
        }
    }

    /// The next request to send, or the operation's output.
    pub(crate) fn next(&mut self) -> Result<Ask, (O::Output, bool)> {
        match self.op.step(self.reply.take()) {
            Step::Ask(ask) => Ok(ask),
            Step::Done(output) => Err((output, self.answered)),
        }
    }

    /// The reply to the request [`Run::next`] gave.
    pub(crate) fn reply(&mut self, reply: Result<Value, StoreError>) {
        self.answered = reply.is_ok();
        self.reply = Some(reply);
    }
}

/// A store operation without IO.
pub(crate) trait Operation {
    /// What it comes to.
    type Output;
    /// The next step, given the reply to the last request (`None` at the start).
    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<Self::Output>;
}

fn script(call: ScriptInvocation<'static>, what: &'static str) -> Step<Never> {
    Step::Ask(Ask {
        request: Request::Script(call),
        what,
    })
}

fn command(cmd: Cmd, what: &'static str) -> Ask {
    Ask {
        request: Request::Command(cmd),
        what,
    }
}

/// No value: the type of a step that can only ask.
pub(crate) enum Never {}

impl Step<Never> {
    fn into_step<T>(self) -> Step<T> {
        match self {
            Step::Ask(ask) => Step::Ask(ask),
            Step::Done(never) => match never {},
        }
    }
}

/// A reply read as `T`; a reply of another shape is corrupt data.
fn read<T: FromRedisValue>(reply: Result<Value, StoreError>, what: &str) -> Result<T, StoreError> {
    redis::from_redis_value(reply?).map_err(|err| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("unexpected reply from redis ({what}): {err}"),
        )
    })
}

/// One script call whose reply `finish` turns into the output.
pub(crate) struct OneCall<F> {
    ask: Option<(ScriptInvocation<'static>, &'static str)>,
    finish: Option<F>,
}

impl<T, F: FnOnce(Result<Vec<i64>, StoreError>) -> T> Operation for OneCall<F> {
    type Output = T;

    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<T> {
        match (reply, self.ask.take(), self.finish.take()) {
            (None, Some((call, what)), finish) => {
                self.finish = finish;
                script(call, what).into_step()
            }
            (Some(reply), _, Some(finish)) => Step::Done(finish(
                reply.and_then(|r| script::values(r, "breaker script")),
            )),
            _ => unreachable!(
                "a one-call operation is stepped once with no reply, then once with it"
            ),
        }
    }
}

fn one_call<T>(
    call: ScriptInvocation<'static>,
    what: &'static str,
    finish: impl FnOnce(Result<Vec<i64>, StoreError>) -> T,
) -> OneCall<impl FnOnce(Result<Vec<i64>, StoreError>) -> T> {
    OneCall {
        ask: Some((call, what)),
        finish: Some(finish),
    }
}

/// An operation whose answer may be known without Redis: `Ready` answers at once, `Ask`
/// runs the operation it holds.
enum ReadyOr<T, O> {
    Ready(Option<T>),
    Ask(O),
}

impl<T, O: Operation<Output = T>> Operation for ReadyOr<T, O> {
    type Output = T;

    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<T> {
        match self {
            ReadyOr::Ready(answer) => match answer.take() {
                Some(answer) => Step::Done(answer),
                None => unreachable!("a ready operation is stepped once"),
            },
            ReadyOr::Ask(op) => op.step(reply),
        }
    }
}

/// The pre-call check: from the cache when it can answer, else one script call.
pub(crate) fn acquire(engine: &Engine) -> impl Operation<Output = Result<Permit, Rejected>> + '_ {
    let now = engine.now();
    match engine.cached_acquire(now) {
        Some(decision) => ReadyOr::Ready(Some(decision)),
        None => {
            let sent = engine.send();
            ReadyOr::Ask(one_call(
                engine.invocation(now, Op::Acquire),
                "acquire",
                move |reply| engine.finish_acquire(sent, now, reply),
            ))
        }
    }
}

fn internal(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!("no reply to hand on ({what})"),
    )
}

/// Checks that Redis answers (one `PING`).
pub(crate) fn ping() -> impl Operation<Output = Result<(), StoreError>> {
    Ping { asked: false }
}

struct Ping {
    asked: bool,
}

impl Operation for Ping {
    type Output = Result<(), StoreError>;

    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<Self::Output> {
        match reply {
            None if !self.asked => {
                self.asked = true;
                Step::Ask(command(redis::cmd("PING"), "PING"))
            }
            reply => Step::Done(
                reply
                    .map_or_else(|| Err(internal("PING")), |r| read::<String>(r, "PING"))
                    .map(|_| ()),
            ),
        }
    }
}

/// Reporting an outcome: answered at once, added to the batch (and when to send it), or one
/// script call.
pub(crate) fn record(
    engine: &Engine,
    permit: Permit,
    report: Report,
) -> impl Operation<Output = (Recorded, BatchDue)> + '_ {
    Record {
        engine,
        plan: Some(engine.plan_record(permit, report)),
        context: None,
    }
}

struct Record<'a> {
    engine: &'a Engine,
    plan: Option<RecordPlan>,
    context: Option<RecordContext>,
}

impl Operation for Record<'_> {
    type Output = (Recorded, BatchDue);

    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<Self::Output> {
        match (self.plan.take(), self.context.take(), reply) {
            (Some(RecordPlan::Done(recorded)), ..) => Step::Done((recorded, BatchDue::No)),
            (Some(RecordPlan::Batched(recorded, due)), ..) => Step::Done((recorded, due)),
            (Some(RecordPlan::Send(call, context)), ..) => {
                self.context = Some(context);
                script(call, "record").into_step()
            }
            (None, Some(context), Some(reply)) => Step::Done((
                self.engine
                    .finish_record(context, reply.and_then(|r| script::values(r, "record"))),
                BatchDue::No,
            )),
            _ => unreachable!("a record is planned once, then finished with its reply"),
        }
    }
}

/// Sending what the batch holds (as `take` says), if anything.
pub(crate) fn flush(
    engine: &Engine,
    take: Take,
) -> impl Operation<Output = Result<(), StoreError>> + '_ {
    match engine.take_batch(take) {
        Some((call, context)) => ReadyOr::Ask(one_call(call, "sending a batch", move |reply| {
            let result = match &reply {
                Ok(_) => Ok(()),
                Err(err) => Err(StoreError::new(err.kind(), err.to_string())),
            };
            engine.finish_batch(context, reply);
            result
        })),
        None => ReadyOr::Ready(Some(Ok(()))),
    }
}

/// The breaker's state, read from Redis.
pub(crate) fn snapshot(
    engine: &Engine,
) -> impl Operation<Output = Result<Snapshot, StoreError>> + '_ {
    one_call(
        engine.operator_call(Op::Snapshot),
        "reading the breaker",
        |reply| engine.finish_snapshot(&reply?),
    )
}

/// The window's live buckets.
pub(crate) fn window(
    engine: &Engine,
) -> impl Operation<Output = Result<Vec<Bucket>, StoreError>> + '_ {
    one_call(
        engine.operator_call(Op::Window),
        "reading the window",
        |reply| engine.finish_window(&reply?),
    )
}

/// An operator's action: the transition it made.
pub(crate) fn operate(
    engine: &Engine,
    action: Action,
) -> impl Operation<Output = Result<Option<Transition>, StoreError>> + '_ {
    match engine.action_call(action) {
        Ok((call, what)) => ReadyOr::Ask(one_call(call, what, move |reply| {
            engine.finish_action(action, &reply?)
        })),
        Err(err) => ReadyOr::Ready(Some(Err(err))),
    }
}

/// Writing the breaker into the registry (a few plain commands, one key each: in a Cluster the
/// registry and the breaker live in different slots); whether it worked. Then a few names
/// drawn from the registry at random are checked, and those whose breakers have expired are
/// pruned, so the registry does not grow with every name ever used (breakers on demand) even
/// when nobody lists it. A failed check leaves the registration as it went.
pub(crate) fn register(engine: &Engine) -> impl Operation<Output = bool> + '_ {
    let requests = match engine.registration() {
        Ok([policies, mut name]) => {
            // Names at random, to check that their breakers still have policies.
            name.add_command(
                redis::cmd("HRANDFIELD")
                    .arg(&engine.keys.registry)
                    .arg(PRUNE_SAMPLE)
                    .clone(),
            );
            VecDeque::from([policies, name])
        }
        Err(err) => {
            tracing::warn!(breaker = %engine.name, error = %err, "breaker registration failed");
            VecDeque::new()
        }
    };
    let ok = !requests.is_empty();
    Register {
        engine,
        requests,
        ok,
        pruning: Prune::NotYet,
    }
}

/// Names a registration checks after writing its own.
const PRUNE_SAMPLE: usize = 8;

struct Register<'a> {
    engine: &'a Engine,
    /// The policy's request, then the name's (with the names drawn at random).
    requests: VecDeque<redis::Pipeline>,
    ok: bool,
    pruning: Prune,
}

/// Where a registration's check of other names is.
enum Prune {
    /// Writing the policy, then the name with names drawn at random.
    NotYet,
    /// Asked whether `0`'s breaker still has its policies; the rest to check after it.
    Checking(String, Vec<String>),
    /// Asked to prune `0`'s name; the rest to check after it.
    Removing(String, Vec<String>),
    /// Asked again whether `0`'s policies exist, after pruning it: a process that registered
    /// it meanwhile (after Redis lost the keys) wrote its policy first, so the name goes back.
    Rechecking(String, Vec<String>),
    /// Asked to put `0`'s name back.
    Restoring(Vec<String>),
}

impl Register<'_> {
    /// Asks about the next name drawn, or ends.
    fn check_next(&mut self, mut names: Vec<String>) -> Step<bool> {
        let Some(name) = names.pop() else {
            return Step::Done(self.ok);
        };
        let keys = Keys::new(&self.engine.settings.prefix, &name);
        self.pruning = Prune::Checking(name, names);
        Step::Ask(command(
            Cmd::exists(&keys.policies),
            "checking the registry",
        ))
    }
}

impl Operation for Register<'_> {
    type Output = bool;

    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<bool> {
        if let Prune::NotYet = self.pruning {
            let reply = match reply {
                Some(Err(err)) => {
                    tracing::warn!(breaker = %self.engine.name, error = %err, "breaker registration failed");
                    return Step::Done(false);
                }
                Some(Ok(reply)) => Some(reply),
                None => None,
            };
            if !self.ok {
                return Step::Done(false);
            }
            if let Some(pipeline) = self.requests.pop_front() {
                return Step::Ask(Ask {
                    request: Request::Pipeline(pipeline),
                    what: "registering the breaker",
                });
            }
            // The name's request answered: its last reply holds the names drawn.
            let names = match reply {
                Some(Value::Array(mut replies)) => replies
                    .pop()
                    .and_then(|names| read::<Vec<String>>(Ok(names), "registry names").ok())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let own = self.engine.name.to_string();
            let names = names.into_iter().filter(|name| *name != own).collect();
            return self.check_next(names);
        }
        let Some(Ok(reply)) = reply else {
            // The registration itself went through; the check is for another time.
            return Step::Done(self.ok);
        };
        match std::mem::replace(&mut self.pruning, Prune::NotYet) {
            Prune::Checking(name, rest) => {
                if matches!(read::<i64>(Ok(reply), "exists"), Ok(0)) {
                    let keys = Keys::new(&self.engine.settings.prefix, &name);
                    self.pruning = Prune::Removing(name.clone(), rest);
                    Step::Ask(command(
                        Cmd::hdel(&keys.registry, &name),
                        "pruning the registry",
                    ))
                } else {
                    self.check_next(rest)
                }
            }
            Prune::Removing(name, rest) => {
                let keys = Keys::new(&self.engine.settings.prefix, &name);
                self.pruning = Prune::Rechecking(name, rest);
                Step::Ask(command(
                    Cmd::exists(&keys.policies),
                    "checking the registry",
                ))
            }
            Prune::Rechecking(name, rest) => {
                if matches!(read::<i64>(Ok(reply), "exists"), Ok(1)) {
                    let keys = Keys::new(&self.engine.settings.prefix, &name);
                    self.pruning = Prune::Restoring(rest);
                    let first_seen = self.engine.settings.wall_now().as_millis();
                    Step::Ask(command(
                        Cmd::hset_nx(&keys.registry, &name, first_seen),
                        "checking the registry",
                    ))
                } else {
                    self.check_next(rest)
                }
            }
            Prune::Restoring(rest) => self.check_next(rest),
            Prune::NotYet => Step::Done(self.ok),
        }
    }
}

/// Every registered breaker with its live state and the policies it was registered with, read
/// with plain commands and decided by `stored.rs` (no script, nothing written); breakers
/// whose keys have expired are left out.
pub(crate) fn list(
    settings: &Settings,
) -> impl Operation<Output = Result<Vec<BreakerInfo>, StoreError>> + '_ {
    List {
        settings,
        names: None,
        now: settings.inject_time.then(|| settings.clock.now()),
        current: None,
        breakers: Vec::new(),
    }
}

struct List<'a> {
    settings: &'a Settings,
    names: Option<VecDeque<(String, Timestamp)>>,
    /// The store's clock, as the script would read it (the server's `TIME`, unless injected).
    now: Option<Timestamp>,
    current: Option<Listing>,
    breakers: Vec<BreakerInfo>,
}

/// A breaker's policies, as the registry holds them.
struct Found {
    name: String,
    first_seen: Timestamp,
    last_seen: Timestamp,
    policies: Vec<breaker_core::Policy>,
}

/// Where the listing of one breaker is.
enum Listing {
    Policies(String, Timestamp),
    State(Found),
    Buckets(Found, Stored),
}

impl List<'_> {
    /// The next breaker's first request, or the listing.
    fn next_breaker(&mut self) -> Step<Result<Vec<BreakerInfo>, StoreError>> {
        let Some((name, first_seen)) = self.names.as_mut().and_then(VecDeque::pop_front) else {
            return Step::Done(Ok(std::mem::take(&mut self.breakers)));
        };
        let keys = Keys::new(&self.settings.prefix, &name);
        self.current = Some(Listing::Policies(name, first_seen));
        Step::Ask(command(
            Cmd::hgetall(&keys.policies),
            "reading a breaker's policies",
        ))
    }

    /// Lists `found` with `snapshot`, and goes on.
    fn listed(
        &mut self,
        found: Found,
        snapshot: Snapshot,
    ) -> Step<Result<Vec<BreakerInfo>, StoreError>> {
        self.breakers.push(BreakerInfo {
            name: found.name,
            first_seen: found.first_seen,
            last_seen: found.last_seen,
            policies: found.policies,
            snapshot,
        });
        self.next_breaker()
    }

    /// Reads `fields` of `found`'s hash, for `stored`.
    fn read_buckets(
        &mut self,
        found: Found,
        stored: Stored,
        fields: &[String],
    ) -> Step<Result<Vec<BreakerInfo>, StoreError>> {
        let keys = Keys::new(&self.settings.prefix, &found.name);
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&keys.state).arg(fields);
        self.current = Some(Listing::Buckets(found, stored));
        Step::Ask(command(cmd, "reading a breaker's window"))
    }
}

impl Operation for List<'_> {
    type Output = Result<Vec<BreakerInfo>, StoreError>;

    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<Self::Output> {
        let Some(reply) = reply else {
            if self.now.is_none() {
                return Step::Ask(command(redis::cmd("TIME"), "reading the server's time"));
            }
            return Step::Ask(command(
                registry::names(&self.settings.prefix),
                "reading the registry",
            ));
        };
        let Some(now) = self.now else {
            match reply.and_then(stored::server_time) {
                Ok(now) => self.now = Some(now),
                Err(err) => return Step::Done(Err(err)),
            }
            return Step::Ask(command(
                registry::names(&self.settings.prefix),
                "reading the registry",
            ));
        };
        if self.names.is_none() {
            match read::<HashMap<String, String>>(reply, "registry") {
                Ok(raw) => self.names = Some(registry::parse_names(raw).into()),
                Err(err) => return Step::Done(Err(err)),
            }
            return self.next_breaker();
        }
        match self.current.take() {
            Some(Listing::Policies(name, first_seen)) => {
                let raw = match read::<HashMap<String, String>>(reply, "policies") {
                    Ok(raw) => raw,
                    Err(err) => return Step::Done(Err(err)),
                };
                let (policies, last_seen) = registry::parse_policies(raw);
                if policies.is_empty() {
                    // Its keys expired: not listed (registration prunes the registry).
                    return self.next_breaker();
                }
                let keys = Keys::new(&self.settings.prefix, &name);
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(&keys.state).arg(&stored::FIELDS[..]);
                self.current = Some(Listing::State(Found {
                    name,
                    first_seen,
                    last_seen,
                    policies,
                }));
                Step::Ask(command(cmd, "reading a breaker's state"))
            }
            Some(Listing::State(found)) => {
                let decoded = read::<Vec<Option<Vec<u8>>>>(reply, "a breaker's state")
                    .and_then(|fields| stored::decode(&found.name, &fields));
                let policy = found.policies[0].clone();
                match decoded {
                    Err(err) => Step::Done(Err(err)),
                    Ok(None) => self.listed(found, stored::new_breaker()),
                    Ok(Some(state)) => {
                        let needed = state.needed(now, &policy);
                        if needed == Needed::Nothing {
                            return match state.snapshot(&found.name, now, &policy, &needed, &[]) {
                                Ok(Some(snapshot)) => self.listed(found, snapshot),
                                Ok(None) => {
                                    let fields = Needed::All.fields(u64::from(policy.buckets()));
                                    self.read_buckets(found, state, &fields)
                                }
                                Err(err) => Step::Done(Err(err)),
                            };
                        }
                        let fields = needed.fields(u64::from(policy.buckets()));
                        self.read_buckets(found, state, &fields)
                    }
                }
            }
            Some(Listing::Buckets(found, state)) => {
                let policy = found.policies[0].clone();
                let values = match read::<Vec<Option<Vec<u8>>>>(reply, "a breaker's window") {
                    Ok(values) => values,
                    Err(err) => return Step::Done(Err(err)),
                };
                match state.snapshot_from_buckets(&found.name, now, &policy, &values) {
                    Ok(Some(snapshot)) => self.listed(found, snapshot),
                    // The totals must be counted again from every bucket.
                    Ok(None) => {
                        let fields = Needed::All.fields(u64::from(policy.buckets()));
                        self.read_buckets(found, state, &fields)
                    }
                    Err(err) => Step::Done(Err(err)),
                }
            }
            None => unreachable!("a listing is stepped only while a breaker is being read"),
        }
    }
}

/// The newest `count` entries of the history of breaker `name`, or of every registered
/// breaker merged, newest first.
pub(crate) fn history<'a>(
    settings: &'a Settings,
    name: Option<&str>,
    count: usize,
) -> impl Operation<Output = Result<Vec<HistoryEntry>, StoreError>> + 'a {
    History {
        settings,
        names: name.map(|name| VecDeque::from([name.to_owned()])),
        reading: None,
        count,
        entries: Vec::new(),
    }
}

struct History<'a> {
    settings: &'a Settings,
    names: Option<VecDeque<String>>,
    reading: Option<String>,
    count: usize,
    entries: Vec<HistoryEntry>,
}

impl History<'_> {
    fn next_breaker(&mut self) -> Step<Result<Vec<HistoryEntry>, StoreError>> {
        let Some(name) = self.names.as_mut().and_then(VecDeque::pop_front) else {
            let entries = std::mem::take(&mut self.entries);
            return Step::Done(Ok(history::merge(entries, self.count)));
        };
        let keys = Keys::new(&self.settings.prefix, &name);
        self.reading = Some(name);
        Step::Ask(command(
            history::read(&keys, self.count),
            "reading a breaker's history",
        ))
    }
}

impl Operation for History<'_> {
    type Output = Result<Vec<HistoryEntry>, StoreError>;

    fn step(&mut self, reply: Option<Result<Value, StoreError>>) -> Step<Self::Output> {
        if let Err(err) = history::check_count(self.count) {
            return Step::Done(Err(err));
        }
        let Some(reply) = reply else {
            if self.names.is_some() {
                return self.next_breaker();
            }
            return Step::Ask(command(
                registry::names(&self.settings.prefix),
                "reading the registry",
            ));
        };
        match self.reading.take() {
            None => match read::<HashMap<String, String>>(reply, "registry") {
                Ok(raw) => {
                    let names = registry::parse_names(raw).into_iter().map(|(name, _)| name);
                    self.names = Some(names.collect());
                    self.next_breaker()
                }
                Err(err) => Step::Done(Err(err)),
            },
            Some(name) => match read::<Vec<(String, Vec<String>)>>(reply, "history") {
                Ok(raw) => {
                    self.entries.extend(history::parse(&name, raw));
                    self.next_breaker()
                }
                Err(err) => Step::Done(Err(err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use breaker_core::{ManualClock, Policy};

    use super::*;

    fn engine() -> Engine {
        let settings = Settings::for_tests(ManualClock::new(Timestamp::from_millis(1_000)));
        Engine::new("registering", Policy::default(), settings)
    }

    /// The command an operation asks for next, as its name and first argument.
    fn asked(step: Step<bool>) -> (String, String) {
        let Step::Ask(Ask {
            request: Request::Command(cmd),
            ..
        }) = step
        else {
            panic!("expected a command");
        };
        let args: Vec<String> = cmd
            .args_iter()
            .filter_map(|arg| match arg {
                redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect();
        (args[0].clone(), args.get(2).cloned().unwrap_or_default())
    }

    /// A registration prunes a name whose policies are gone, then looks again: when another
    /// process registered that name in between (Redis had lost the keys, and the other
    /// process wrote its policy before its name), the name goes back into the registry.
    #[test]
    fn a_name_registered_while_it_was_pruned_goes_back() {
        let engine = engine();
        let mut op = register(&engine);
        // The policy, then the name with names drawn at random: two requests.
        for _ in 0..2 {
            let step = op.step(Some(Ok(Value::Okay)));
            assert!(matches!(
                step,
                Step::Ask(Ask {
                    request: Request::Pipeline(_),
                    ..
                })
            ));
        }
        // Its own name drawn is not checked.
        let drawn = Value::Array(vec![
            Value::BulkString(b"registering".to_vec()),
            Value::BulkString(b"elsewhere".to_vec()),
        ]);
        let replies = Value::Array(vec![Value::Int(1), Value::Int(1), Value::Int(0), drawn]);
        assert_eq!(asked(op.step(Some(Ok(replies)))).0, "EXISTS");
        assert_eq!(
            asked(op.step(Some(Ok(Value::Int(0))))),
            ("HDEL".to_owned(), "elsewhere".to_owned())
        );
        assert_eq!(asked(op.step(Some(Ok(Value::Int(1))))).0, "EXISTS");
        // Its policies exist now: registered meanwhile.
        assert_eq!(
            asked(op.step(Some(Ok(Value::Int(1))))),
            ("HSETNX".to_owned(), "elsewhere".to_owned())
        );
        assert!(matches!(op.step(Some(Ok(Value::Int(1)))), Step::Done(true)));
    }
}
