//! [`Action`]: what an operator does to a breaker, as one value every store and tool passes
//! along as is, and [`Circuit::operate`](super::Circuit::operate) applies.

use std::fmt;
use std::time::Duration;

use super::Override;

/// An operator action on one breaker, for every process sharing its store: what
/// [`BlockingOperate::operate`](crate::BlockingOperate::operate) takes, and
/// [`Circuit::operate`](super::Circuit::operate) applies.
///
/// ```
/// use std::time::Duration;
/// use breaker_core::{Action, Override};
///
/// let action = Action::parse("force-open", Some(Duration::from_secs(600)))?;
/// assert_eq!(action, Action::Override { mode: Override::ForcedOpen, duration: Some(Duration::from_secs(600)) });
/// assert_eq!(action.to_string(), "force-open for 10m");
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Open now, for the policy's `open_for`, in a new generation.
    Trip,
    /// Close now and clear the window.
    Reset,
    /// Set an override (`Auto` lifts one) for `duration`: forever if `None`, or if longer than
    /// [`MAX_DURATION`](crate::MAX_DURATION).
    Override {
        /// The mode to hold.
        mode: Override,
        /// How long it holds.
        duration: Option<Duration>,
    },
}

impl Action {
    /// The actions' names, as [`parse`](Action::parse) takes them.
    pub const NAMES: [&'static str; 5] = ["trip", "reset", "force-open", "force-closed", "auto"];

    /// Whether an override may last `duration`: at least a millisecond, since stores keep an
    /// override's end in whole milliseconds and a shorter one would end as it begins. The
    /// one place the rule lives: [`parse`](Action::parse), the dashboard and the `breaker`
    /// command all ask it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use breaker_core::Action;
    ///
    /// assert!(Action::check_override(Duration::from_millis(1)).is_ok());
    /// let refused = Action::check_override(Duration::from_micros(999)).unwrap_err();
    /// assert!(refused.contains("at least 1ms"));
    /// ```
    pub fn check_override(duration: Duration) -> Result<(), String> {
        if duration < Duration::from_millis(1) {
            return Err(format!(
                "an override lasts at least 1ms: {} would end as it begins",
                humantime::format_duration(duration)
            ));
        }
        Ok(())
    }

    /// The action named as in the dashboard's API paths and the `breaker` command (`trip`,
    /// `reset`, `force-open`, `force-closed`, `auto`), with an optional duration for the
    /// overrides that hold one (at least a millisecond: [`check_override`](Action::check_override)).
    pub fn parse(name: &str, duration: Option<Duration>) -> Result<Action, String> {
        if let (Some(duration), "force-open" | "force-closed") = (duration, name) {
            Action::check_override(duration)?;
        }
        let action = match name {
            "trip" => Action::Trip,
            "reset" => Action::Reset,
            "auto" => Action::Override {
                mode: Override::Auto,
                duration: None,
            },
            "force-open" => {
                return Ok(Action::Override {
                    mode: Override::ForcedOpen,
                    duration,
                });
            }
            "force-closed" => {
                return Ok(Action::Override {
                    mode: Override::ForcedClosed,
                    duration,
                });
            }
            other => {
                return Err(format!(
                    "unknown action {other:?}: use trip, reset, force-open, force-closed or auto"
                ));
            }
        };
        match duration {
            None => Ok(action),
            Some(_) => Err(format!(
                "{name} takes no duration: only force-open and force-closed do"
            )),
        }
    }
}

impl fmt::Display for Action {
    /// The action's name, as [`Action::parse`] takes it, and its duration if it holds one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, duration) = match self {
            Action::Trip => ("trip", None),
            Action::Reset => ("reset", None),
            Action::Override {
                mode: Override::Auto,
                ..
            } => ("auto", None),
            Action::Override {
                mode: Override::ForcedOpen,
                duration,
            } => ("force-open", *duration),
            Action::Override {
                mode: Override::ForcedClosed,
                duration,
            } => ("force-closed", *duration),
        };
        f.write_str(name)?;
        match duration {
            Some(duration) => write!(f, " for {}", humantime::format_duration(duration)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_as_the_command_names_them() {
        let ten = Some(Duration::from_secs(600));
        assert_eq!(Action::parse("trip", None), Ok(Action::Trip));
        assert_eq!(
            Action::parse("force-open", ten),
            Ok(Action::Override {
                mode: Override::ForcedOpen,
                duration: ten
            })
        );
        assert_eq!(
            Action::parse("auto", None),
            Ok(Action::Override {
                mode: Override::Auto,
                duration: None
            })
        );
        assert!(Action::parse("reset", ten).is_err());
        assert!(Action::parse("explode", None).is_err());
        // An override shorter than a millisecond would end as it begins.
        for name in ["force-open", "force-closed"] {
            let refused = Action::parse(name, Some(Duration::from_micros(999))).unwrap_err();
            assert!(
                refused.contains("at least 1ms") && refused.contains("999us"),
                "{refused}"
            );
            assert!(Action::parse(name, Some(Duration::from_millis(1))).is_ok());
        }
        assert_eq!(
            Action::Override {
                mode: Override::ForcedClosed,
                duration: ten
            }
            .to_string(),
            "force-closed for 10m"
        );
    }
}
