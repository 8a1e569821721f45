//! Validation of a cluster's failure-handling settings: outlier detection.

use std::time::Duration;

use toml::Spanned;

use super::diagnostic::Collector;
use super::model::OutlierDetectionConfig;
use super::schema::OutlierDetectionSection;
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
