//! Retry decisions: whether a failed attempt is tried again (the policy's
//! conditions, the method, whether the origin may have seen the request),
//! how long to back off, and the cluster's retry budget. Pure except for
//! the budget's counter; the attempt loop that uses them is
//! [`super::attempt`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;

use super::error::ProxyError;
use crate::config::{RetryBudget, RetryOn, RetryPolicy};

/// Why an attempt is retried: the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    ConnectFailure,
    RefusedStream,
    Reset,
    PerTryTimeout,
    Status,
}

impl RetryReason {
    pub fn name(self) -> &'static str {
        match self {
            RetryReason::ConnectFailure => "connect_failure",
            RetryReason::RefusedStream => "refused_stream",
            RetryReason::Reset => "reset",
            RetryReason::PerTryTimeout => "per_try_timeout",
            RetryReason::Status => "status",
        }
    }
}

/// RFC 9110 9.2.2: methods whose intended effect is the same however many
/// times they are sent.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether `policy` retries an attempt that failed with `error`. A failure
/// the origin may have seen is retried only for an idempotent method
/// (unless the policy says `retry_non_idempotent`); one it cannot have
/// seen, whatever the method.
pub fn on_error(policy: &RetryPolicy, error: &ProxyError, method: &Method) -> Option<RetryReason> {
    let on = |c: RetryOn| policy.retry_on.contains(&c);
    let resets = on(RetryOn::Reset) || on(RetryOn::GatewayError) || on(RetryOn::ServerError);
    let reason = match error {
        ProxyError::ConnectFailure { .. } | ProxyError::UpstreamTls { .. }
            if on(RetryOn::ConnectFailure) || resets =>
        {
            RetryReason::ConnectFailure
        }
        ProxyError::RefusedStream { .. } if on(RetryOn::RefusedStream) || resets => {
            RetryReason::RefusedStream
        }
        ProxyError::UpstreamReset { .. } | ProxyError::UpstreamProtocol { .. } if resets => {
            RetryReason::Reset
        }
        ProxyError::PerTryTimeout { .. } if resets => RetryReason::PerTryTimeout,
        _ => return None,
    };
    (!error.may_have_reached_origin() || policy.retry_non_idempotent || is_idempotent(method))
        .then_some(reason)
}

/// Whether `policy` retries a response with `status` (the origin answered,
/// so only idempotent methods unless `retry_non_idempotent`).
pub fn on_status(policy: &RetryPolicy, status: u16, method: &Method) -> Option<RetryReason> {
    if status < 500 && policy.retriable_status_codes.is_empty() {
        return None;
    }
    let on = |c: RetryOn| policy.retry_on.contains(&c);
    let retried = (on(RetryOn::ServerError) && (500..=599).contains(&status))
        || (on(RetryOn::GatewayError) && (502..=504).contains(&status))
        || (on(RetryOn::RetriableStatusCodes) && policy.retriable_status_codes.contains(&status));
    (retried && (policy.retry_non_idempotent || is_idempotent(method)))
        .then_some(RetryReason::Status)
}

/// Back-off before retry number `retry` (1 for the first): full jitter
/// between 0 and base x 2^(retry - 1), capped at the maximum (Envoy's, and
/// AWS's "full jitter"). `random` is any uniform u64.
pub fn backoff(policy: &RetryPolicy, retry: u32, random: u64) -> Duration {
    let ceiling = policy
        .backoff_base_interval
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(policy.backoff_max_interval);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(if nanos == 0 { 0 } else { random % (nanos + 1) })
}

/// One retry in flight, counted against the cluster's budget until dropped.
#[derive(Debug)]
pub struct RetryPermit<'a> {
    active: &'a AtomicU64,
}

impl Drop for RetryPermit<'_> {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes a retry permit if the budget allows one more (no budget: the
/// `max_retries` circuit breaker decides, as in Envoy). Check-then-add, so
/// concurrent workers can overshoot by a retry or two; the budget bounds
/// load, it is not a lock.
pub fn acquire<'a>(
    budget: Option<&RetryBudget>,
    max_retries: u32,
    active_retries: &'a AtomicU64,
    active_requests: u64,
) -> Option<RetryPermit<'a>> {
    let current = active_retries.load(Ordering::Relaxed);
    let allowed = match budget {
        Some(b) => b.allows(current, active_requests),
        None => current < u64::from(max_retries),
    };
    if !allowed {
        return None;
    }
    active_retries.fetch_add(1, Ordering::Relaxed);
    Some(RetryPermit {
        active: active_retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &[RetryOn]) -> RetryPolicy {
        let mut p = crate::config::default_retry_policy();
        p.retry_on = on.to_vec();
        p
    }

    fn connect() -> ProxyError {
        ProxyError::ConnectFailure {
            endpoint: "e".into(),
            detail: "refused".into(),
        }
    }

    fn reset() -> ProxyError {
        ProxyError::UpstreamReset {
            endpoint: "e".into(),
            detail: "reset".into(),
        }
    }

    #[test]
    fn defaults_retry_only_what_never_reached_the_origin_whatever_the_method() {
        let p = crate::config::default_retry_policy();
        assert_eq!(
            on_error(&p, &connect(), &Method::POST),
            Some(RetryReason::ConnectFailure)
        );
        let refused = ProxyError::RefusedStream {
            endpoint: "e".into(),
            detail: "REFUSED_STREAM".into(),
        };
        assert_eq!(
            on_error(&p, &refused, &Method::POST),
            Some(RetryReason::RefusedStream)
        );
        assert_eq!(on_error(&p, &reset(), &Method::GET), None);
        assert_eq!(on_status(&p, 503, &Method::GET), None);
    }

    #[test]
    fn what_the_origin_may_have_seen_is_retried_for_idempotent_methods_only() {
        let mut p = policy(&[RetryOn::GatewayError]);
        assert_eq!(
            on_error(&p, &reset(), &Method::GET),
            Some(RetryReason::Reset)
        );
        assert_eq!(on_error(&p, &reset(), &Method::POST), None);
        assert_eq!(on_status(&p, 503, &Method::PUT), Some(RetryReason::Status));
        assert_eq!(
            on_status(&p, 500, &Method::GET),
            None,
            "500 is no gateway error"
        );
        assert_eq!(on_status(&p, 503, &Method::POST), None);
        p.retry_non_idempotent = true;
        assert_eq!(on_status(&p, 503, &Method::POST), Some(RetryReason::Status));
        let p = policy(&[RetryOn::RetriableStatusCodes]);
        let mut p2 = p.clone();
        p2.retriable_status_codes = vec![409];
        assert_eq!(on_status(&p, 409, &Method::GET), None);
        assert_eq!(on_status(&p2, 409, &Method::GET), Some(RetryReason::Status));
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_capped_ceiling() {
        let p = crate::config::default_retry_policy(); // 25 ms, max 250 ms
        assert_eq!(
            backoff(&p, 1, u64::MAX - 1),
            Duration::from_nanos((u64::MAX - 1) % 25_000_001)
        );
        for random in [0, 7, 1 << 40, u64::MAX] {
            assert!(backoff(&p, 1, random) <= Duration::from_millis(25));
            assert!(backoff(&p, 3, random) <= Duration::from_millis(100));
            assert!(backoff(&p, 30, random) <= Duration::from_millis(250));
        }
        assert_eq!(backoff(&p, 2, 0), Duration::ZERO);
    }

    #[test]
    fn the_budget_allows_a_share_of_active_requests_and_a_minimum() {
        let budget = RetryBudget {
            budget_percent: 20,
            min_retry_concurrency: 3,
        };
        let active = AtomicU64::new(0);
        let held: Vec<_> = (0..3)
            .map(|_| acquire(Some(&budget), 0, &active, 1).expect("the minimum"))
            .collect();
        assert!(
            acquire(Some(&budget), 0, &active, 10).is_none(),
            "20 % of 10 is 2 < 3"
        );
        let fourth = acquire(Some(&budget), 0, &active, 20);
        assert!(fourth.is_some(), "20 % of 20 is 4");
        assert!(acquire(Some(&budget), 0, &active, 20).is_none());
        drop(held);
        drop(fourth);
        assert_eq!(active.load(Ordering::Relaxed), 0, "permits give back");
        let one = acquire(None, 1, &active, 0);
        assert!(one.is_some(), "no budget: max_retries decides");
        assert!(acquire(None, 1, &active, 1000).is_none());
    }
}
