//! Validation of the failure-handling settings: outlier detection, retry
//! policy, retry budget, slow start and circuit breakers.

use std::time::Duration;

use toml::Spanned;

use super::defaults;
use super::diagnostic::Collector;
use super::model::{
    CircuitBreakers, EndpointBreakerConfig, OutlierDetectionConfig, RetryBudget, RetryOn,
    RetryPolicy, SlowStartConfig,
};
use super::schema::{
    CircuitBreakersSection, OutlierDetectionSection, RetryBudgetSection, RetryPolicySection,
    SlowStartSection,
};
use super::validate::{bounded, duration};

/// Outlier detection is on unless the section says `enabled = false`; every
/// field left out takes Envoy's default.
pub fn outlier_detection(
    c: &mut Collector<'_>,
    at: &str,
    s: Option<&Spanned<OutlierDetectionSection>>,
) -> Option<Option<OutlierDetectionConfig>> {
    let default = OutlierDetectionConfig::default();
    let Some(s) = s.map(Spanned::get_ref) else {
        return Some(Some(default));
    };
    if s.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
        return Some(None);
    }
    let at = format!("{at}.outlier_detection");
    let count = |c: &mut Collector<'_>, v: &Option<Spanned<i64>>, name: &str, default: u32| {
        bounded(c, v, &format!("{at}.{name}"), 0..=1_000_000, default)
    };
    let consecutive_5xx = count(
        c,
        &s.consecutive_5xx,
        "consecutive_5xx",
        default.consecutive_5xx,
    );
    let consecutive_gateway_failure = count(
        c,
        &s.consecutive_gateway_failure,
        "consecutive_gateway_failure",
        default.consecutive_gateway_failure,
    );
    let interval = positive(c, &s.interval, &format!("{at}.interval"), default.interval);
    let base_ejection_time = positive(
        c,
        &s.base_ejection_time,
        &format!("{at}.base_ejection_time"),
        default.base_ejection_time,
    );
    let max_ejection_time = positive(
        c,
        &s.max_ejection_time,
        &format!("{at}.max_ejection_time"),
        default.max_ejection_time,
    );
    let max_ejection_percent = bounded(
        c,
        &s.max_ejection_percent,
        &format!("{at}.max_ejection_percent"),
        0..=100,
        default.max_ejection_percent,
    );
    let success_rate_stdev_factor = count(
        c,
        &s.success_rate_stdev_factor,
        "success_rate_stdev_factor",
        default.success_rate_stdev_factor,
    );
    let success_rate_minimum_hosts = count(
        c,
        &s.success_rate_minimum_hosts,
        "success_rate_minimum_hosts",
        default.success_rate_minimum_hosts,
    );
    let success_rate_request_volume = count(
        c,
        &s.success_rate_request_volume,
        "success_rate_request_volume",
        default.success_rate_request_volume,
    );
    let failure_percentage_threshold = match &s.failure_percentage_threshold {
        None => Some(None),
        Some(_) => bounded(
            c,
            &s.failure_percentage_threshold,
            &format!("{at}.failure_percentage_threshold"),
            0..=100,
            0,
        )
        .map(Some),
    };
    let failure_percentage_minimum_hosts = count(
        c,
        &s.failure_percentage_minimum_hosts,
        "failure_percentage_minimum_hosts",
        default.failure_percentage_minimum_hosts,
    );
    let failure_percentage_request_volume = count(
        c,
        &s.failure_percentage_request_volume,
        "failure_percentage_request_volume",
        default.failure_percentage_request_volume,
    );
    Some(Some(OutlierDetectionConfig {
        consecutive_5xx: consecutive_5xx?,
        consecutive_gateway_failure: consecutive_gateway_failure?,
        interval: interval?,
        base_ejection_time: base_ejection_time?,
        max_ejection_time: max_ejection_time?,
        max_ejection_percent: max_ejection_percent?,
        success_rate_stdev_factor: success_rate_stdev_factor?,
        success_rate_minimum_hosts: success_rate_minimum_hosts?,
        success_rate_request_volume: success_rate_request_volume?,
        failure_percentage_threshold: failure_percentage_threshold?,
        failure_percentage_minimum_hosts: failure_percentage_minimum_hosts?,
        failure_percentage_request_volume: failure_percentage_request_volume?,
    }))
}

/// A duration that must be longer than zero.
fn positive(
    c: &mut Collector<'_>,
    v: &Option<Spanned<String>>,
    at: &str,
    default: Duration,
) -> Option<Duration> {
    let d = duration(c, v, at, default)?;
    if d.is_zero() {
        c.error(
            v.as_ref().map_or(0..0, Spanned::span),
            at,
            "must be longer than zero".to_string(),
            Some(format!(
                "use a value such as \"{}\"",
                super::model::format_duration(default)
            )),
        );
        return None;
    }
    Some(d)
}

/// The default retry policy: `config::defaults` explains each value.
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: defaults::RETRY_ON
            .iter()
            .filter_map(|name| RetryOn::ALL.iter().find(|(n, _)| n == name))
            .map(|(_, on)| *on)
            .collect(),
        num_retries: defaults::NUM_RETRIES,
        per_try_timeout: None,
        retriable_status_codes: Vec::new(),
        retry_non_idempotent: false,
        backoff_base_interval: defaults::RETRY_BACKOFF_BASE,
        backoff_max_interval: defaults::RETRY_BACKOFF_MAX,
    }
}

/// A cluster's or a route's `retry_policy`; fields left out take the defaults.
pub fn retry_policy(
    c: &mut Collector<'_>,
    at: &str,
    s: Option<&Spanned<RetryPolicySection>>,
) -> Option<RetryPolicy> {
    let default = default_retry_policy();
    let Some(s) = s.map(Spanned::get_ref) else {
        return Some(default);
    };
    let at = format!("{at}.retry_policy");
    let mut ok = true;
    let retry_on = match &s.retry_on {
        None => default.retry_on.clone(),
        Some(list) => {
            let mut on = Vec::new();
            for (i, name) in list.get_ref().iter().enumerate() {
                match RetryOn::ALL.iter().find(|(n, _)| n == name.get_ref()) {
                    Some((_, o)) if !on.contains(o) => on.push(*o),
                    Some(_) => {}
                    None => {
                        ok = false;
                        let names: Vec<&str> = RetryOn::ALL.iter().map(|(n, _)| *n).collect();
                        c.error(
                            name.span(),
                            format!("{at}.retry_on[{i}]"),
                            format!("unknown retry condition \"{}\"", name.get_ref()),
                            Some(format!("use any of: {}", names.join(", "))),
                        );
                    }
                }
            }
            on
        }
    };
    let num_retries = bounded(
        c,
        &s.num_retries,
        &format!("{at}.num_retries"),
        0..=10,
        default.num_retries,
    );
    let per_try_timeout = match &s.per_try_timeout {
        None => Some(None),
        Some(_) => positive(
            c,
            &s.per_try_timeout,
            &format!("{at}.per_try_timeout"),
            Duration::from_secs(1),
        )
        .map(Some),
    };
    let mut statuses = Vec::new();
    for (i, code) in s
        .retriable_status_codes
        .iter()
        .flat_map(|l| l.get_ref().iter())
        .enumerate()
    {
        match u16::try_from(*code.get_ref()) {
            Ok(n) if (100..=599).contains(&n) => statuses.push(n),
            _ => {
                ok = false;
                c.error(
                    code.span(),
                    format!("{at}.retriable_status_codes[{i}]"),
                    format!("{} is not an HTTP status", code.get_ref()),
                    Some("use status codes from 100 to 599, such as 503".into()),
                );
            }
        }
    }
    if !statuses.is_empty() && !retry_on.contains(&RetryOn::RetriableStatusCodes) && ok {
        c.error(
            s.retriable_status_codes
                .as_ref()
                .map_or(0..0, Spanned::span),
            format!("{at}.retriable_status_codes"),
            "retriable_status_codes has no effect without the retriable-status-codes condition"
                .to_string(),
            Some("add \"retriable-status-codes\" to retry_on".into()),
        );
        ok = false;
    }
    let base = positive(
        c,
        &s.backoff_base_interval,
        &format!("{at}.backoff_base_interval"),
        default.backoff_base_interval,
    );
    let max = match (&s.backoff_max_interval, base) {
        // Envoy's default maximum is ten times the base.
        (None, Some(base)) if s.backoff_base_interval.is_some() => Some(base * 10),
        _ => positive(
            c,
            &s.backoff_max_interval,
            &format!("{at}.backoff_max_interval"),
            default.backoff_max_interval,
        ),
    };
    if let (Some(b), Some(m)) = (base, max)
        && m < b
    {
        c.error(
            s.backoff_max_interval.as_ref().map_or(0..0, Spanned::span),
            format!("{at}.backoff_max_interval"),
            "the longest back-off is shorter than the base".to_string(),
            Some("make backoff_max_interval at least backoff_base_interval".into()),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(RetryPolicy {
        retry_on,
        num_retries: num_retries?,
        per_try_timeout: per_try_timeout?,
        retriable_status_codes: statuses,
        retry_non_idempotent: s
            .retry_non_idempotent
            .as_ref()
            .is_some_and(|v| *v.get_ref()),
        backoff_base_interval: base?,
        backoff_max_interval: max?,
    })
}

/// A cluster's `retry_budget`: on by default; `enabled = false` lifts it.
pub fn retry_budget(
    c: &mut Collector<'_>,
    at: &str,
    s: Option<&Spanned<RetryBudgetSection>>,
) -> Option<Option<RetryBudget>> {
    let s = s.map(Spanned::get_ref);
    if s.and_then(|s| s.enabled.as_ref())
        .is_some_and(|e| !*e.get_ref())
    {
        return Some(None);
    }
    let at = format!("{at}.retry_budget");
    let empty = RetryBudgetSection::default();
    let s = s.unwrap_or(&empty);
    let budget_percent = bounded(
        c,
        &s.budget_percent,
        &format!("{at}.budget_percent"),
        0..=1000,
        defaults::RETRY_BUDGET_PERCENT,
    );
    let min_retry_concurrency = bounded(
        c,
        &s.min_retry_concurrency,
        &format!("{at}.min_retry_concurrency"),
        0..=1_000_000,
        defaults::RETRY_MIN_CONCURRENCY,
    );
    Some(Some(RetryBudget {
        budget_percent: budget_percent?,
        min_retry_concurrency: min_retry_concurrency?,
    }))
}

/// A cluster's `slow_start`: on by default, except for hash policies (their
/// tables must not move), where setting it is an error.
pub fn slow_start(
    c: &mut Collector<'_>,
    at: &str,
    s: Option<&Spanned<SlowStartSection>>,
    hashing: bool,
) -> Option<Option<SlowStartConfig>> {
    let section = s.map(Spanned::get_ref);
    if section
        .and_then(|s| s.enabled.as_ref())
        .is_some_and(|e| !*e.get_ref())
    {
        return Some(None);
    }
    if hashing {
        if let Some(s) = s {
            c.error(
                s.span(),
                format!("{at}.slow_start"),
                "hash policies do not slow-start: their tables place keys by weight, and a ramp would move keys".to_string(),
                Some("remove the slow_start section (or use a non-hash policy)".into()),
            );
            return None;
        }
        return Some(None);
    }
    let at = format!("{at}.slow_start");
    let empty = SlowStartSection::default();
    let s = section.unwrap_or(&empty);
    let window = positive(
        c,
        &s.window,
        &format!("{at}.window"),
        defaults::SLOW_START_WINDOW,
    );
    let aggression = match &s.aggression {
        None => Some(defaults::SLOW_START_AGGRESSION_MILLI),
        Some(a) if (0.1..=10.0).contains(a.get_ref()) => {
            Some((a.get_ref() * 1000.0).round() as u32)
        }
        Some(a) => {
            c.error(
                a.span(),
                format!("{at}.aggression"),
                format!("aggression {} is out of range", a.get_ref()),
                Some("use 0.1 to 10: 1.0 ramps linearly, more ramps faster early".into()),
            );
            None
        }
    };
    let min_weight_percent = bounded(
        c,
        &s.min_weight_percent,
        &format!("{at}.min_weight_percent"),
        1..=100,
        defaults::SLOW_START_MIN_WEIGHT_PERCENT,
    );
    Some(Some(SlowStartConfig {
        window: window?,
        aggression_milli: aggression?,
        min_weight_percent: min_weight_percent?,
    }))
}

/// A cluster's `circuit_breakers`: Envoy's thresholds and defaults.
pub fn circuit_breakers(
    c: &mut Collector<'_>,
    at: &str,
    s: Option<&Spanned<CircuitBreakersSection>>,
) -> Option<CircuitBreakers> {
    let at = format!("{at}.circuit_breakers");
    let empty = CircuitBreakersSection::default();
    let s = s.map_or(&empty, Spanned::get_ref);
    let mut limit = |v: &Option<Spanned<i64>>, name: &str, default: u32| {
        bounded(c, v, &format!("{at}.{name}"), 1..=u32::MAX, default)
    };
    let max_connections = limit(
        &s.max_connections,
        "max_connections",
        defaults::MAX_UPSTREAM_CONNECTIONS,
    );
    let max_pending_requests = limit(
        &s.max_pending_requests,
        "max_pending_requests",
        defaults::MAX_PENDING_REQUESTS,
    );
    let max_requests = limit(&s.max_requests, "max_requests", defaults::MAX_REQUESTS);
    let max_retries = limit(&s.max_retries, "max_retries", defaults::MAX_RETRIES);
    let consecutive_failures = bounded(
        c,
        &s.consecutive_failures,
        &format!("{at}.consecutive_failures"),
        0..=1_000_000,
        0,
    );
    let open_interval = positive(
        c,
        &s.open_interval,
        &format!("{at}.open_interval"),
        defaults::BREAKER_OPEN_INTERVAL,
    );
    let half_open_probes = bounded(
        c,
        &s.half_open_probes,
        &format!("{at}.half_open_probes"),
        1..=1_000_000,
        defaults::BREAKER_HALF_OPEN_PROBES,
    );
    let endpoint = match consecutive_failures? {
        0 => None,
        n => Some(EndpointBreakerConfig {
            consecutive_failures: n,
            open_interval: open_interval?,
            half_open_probes: half_open_probes?,
        }),
    };
    Some(CircuitBreakers {
        max_connections: max_connections?,
        max_pending_requests: max_pending_requests?,
        max_requests: max_requests?,
        max_retries: max_retries?,
        endpoint,
    })
}
