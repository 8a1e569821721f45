//! Config errors: every problem in one pass, each with line, column, field,
//! message and fix.

use super::*;

const GOOD: &str = r#"
[[listeners]]
name = "public"
address = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "api"
[[clusters]]
name = "api"
endpoints = [{ address = "10.0.0.1:80" }]
"#;

fn errors(src: &str) -> Vec<Diagnostic> {
    parse("t.toml", src)
        .expect_err("config should be rejected")
        .diagnostics
}

fn find<'a>(ds: &'a [Diagnostic], field: &str) -> &'a Diagnostic {
    ds.iter()
        .find(|d| d.field == field)
        .unwrap_or_else(|| panic!("no diagnostic for {field}: {ds:#?}"))
}

#[test]
fn a_good_config_gets_defaults() {
    let c = parse("t.toml", GOOD).unwrap();
    assert_eq!(c.admin.address.to_string(), defaults::ADMIN_ADDRESS);
    let cl = &c.clusters[0];
    assert_eq!(cl.policy.name(), "peak_ewma", "the default policy");
    assert_eq!(cl.connect_timeout, defaults::CONNECT_TIMEOUT);
    assert_eq!(cl.endpoints[0].weight, 1);
    assert_eq!(c.listeners[0].routes[0].cluster_index, 0);
    assert!(c.runtime.workers >= 1);
}

#[test]
fn every_problem_is_reported_with_location_and_fix() {
    let src = r#"[admin]
adress = "127.0.0.1:9901"

[[listeners]]
name = "public"
address = "127.0.0.1:99999"
[[listeners.routes]]
cluster = "apii"
path_prefix = "v1"

[[clusters]]
name = "api"
policy = "least_requests"
endpoints = [{ address = "10.0.0.1:80", weight = 0 }, { address = "not an address" }]
connect_timeout = "5"

[[clusters]]
name = "api"
endpoints = [{ address = "10.0.0.2:80", wieght = 2 }]
"#;
    let ds = errors(src);
    let d = find(&ds, "admin.adress");
    assert_eq!((d.line, d.column), (2, 1));
    assert_eq!(d.message, "unknown field `adress`");
    assert_eq!(d.help.as_deref(), Some("did you mean `address`?"));

    let d = find(&ds, "listeners[0].address");
    assert_eq!((d.line, d.column), (6, 11));
    assert_eq!(d.message, "\"127.0.0.1:99999\" is not a valid address");

    let d = find(&ds, "listeners[0].routes[0].cluster");
    assert_eq!(d.line, 8);
    assert_eq!(
        d.message,
        "route points to cluster \"apii\", which is not defined"
    );
    assert_eq!(d.help.as_deref(), Some("did you mean \"api\"?"));

    let d = find(&ds, "listeners[0].routes[0].path_prefix");
    assert_eq!(d.help.as_deref(), Some("write it as \"/v1\""));

    let d = find(&ds, "clusters[0].policy");
    assert_eq!(d.line, 13);
    assert_eq!(d.message, "unknown balancing policy \"least_requests\"");
    assert_eq!(d.help.as_deref(), Some("did you mean \"least_request\"?"));

    let d = find(&ds, "clusters[0].endpoints[0].weight");
    assert_eq!(d.message, "weight 0 is out of range");
    assert!(d.help.as_deref().unwrap().starts_with("weights start at 1"));

    let d = find(&ds, "clusters[0].endpoints[1].address");
    assert_eq!(d.message, "\"not an address\" is not a valid address");

    let d = find(&ds, "clusters[0].connect_timeout");
    assert_eq!(d.message, "\"5\" is not a duration");

    let d = find(&ds, "clusters[1].name");
    assert_eq!(d.line, 18);
    assert_eq!(
        d.message,
        "cluster name \"api\" is already used by clusters[0]"
    );

    let d = find(&ds, "clusters[1].endpoints[0].wieght");
    assert_eq!(d.line, 19);
    assert_eq!(d.help.as_deref(), Some("did you mean `weight`?"));

    assert_eq!(ds.len(), 10, "{ds:#?}");
    let lines: Vec<usize> = ds.iter().map(|d| d.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted by position");
}

#[test]
fn syntax_errors_point_at_the_spot() {
    let ds = errors("[[listeners]]\nname = \"a\nx = 1\n");
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].field, "(syntax)");
    assert_eq!(ds[0].line, 2);
}

#[test]
fn type_errors_name_the_field() {
    let ds = errors(&GOOD.replace(
        "address = \"10.0.0.1:80\"",
        "address = \"10.0.0.1:80\", weight = \"heavy\"",
    ));
    assert_eq!(ds.len(), 1);
    assert!(ds[0].message.contains("invalid type"), "{:?}", ds[0]);
    assert!(
        ds[0]
            .help
            .as_deref()
            .unwrap()
            .contains("strings are quoted")
    );
}

#[test]
fn missing_pieces_are_explained() {
    let ds = errors("[admin]\naddress = \"127.0.0.1:9901\"\n");
    assert_eq!(
        find(&ds, "listeners").message,
        "no listeners are defined, so fulcrum would accept no traffic"
    );
    let ds = errors(&GOOD.replace(
        "endpoints = [{ address = \"10.0.0.1:80\" }]",
        "endpoints = []",
    ));
    assert_eq!(
        find(&ds, "clusters[0].endpoints").message,
        "cluster \"api\" has no endpoints"
    );
}

#[test]
fn health_check_fields_are_checked() {
    let src = format!(
        "{GOOD}[clusters.health_check]\ntype = \"tcp\"\npath = \"/x\"\nhealthy_threshold = 0\nexpected_statuses = [\"999\"]\ninterval = \"0s\"\n"
    );
    let ds = errors(&src);
    find(&ds, "clusters[0].health_check.path");
    find(&ds, "clusters[0].health_check.expected_statuses");
    find(&ds, "clusters[0].health_check.healthy_threshold");
    find(&ds, "clusters[0].health_check.interval");
}

#[test]
fn choice_count_only_with_least_request() {
    let ds = errors(&GOOD.replace(
        "name = \"api\"",
        "name = \"api\"\npolicy = \"round_robin\"\nchoice_count = 3",
    ));
    assert_eq!(
        find(&ds, "clusters[0].choice_count").message,
        "choice_count does not apply to policy \"round_robin\""
    );
}

#[test]
fn display_is_file_line_column_field() {
    let e = parse("conf/lb.toml", "[admin]\nadress = \"x\"\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("error: conf/lb.toml:2:1: admin.adress: unknown field `adress`\n  help: did you mean `address`?\n"), "{text}");
}

#[test]
fn hash_policy_entries_name_exactly_one_source() {
    let src = GOOD.replace(
        "cluster = \"api\"\n[[clusters]]",
        "cluster = \"api\"\nhash_policy = [{ header = \"x-user\" }, { cookie = \"sid\", path = true }, {}, { source_ip = true }]\naffinity_cookie = { name = \"lb\", ttl = \"1h\" }\n[[clusters]]",
    );
    let ds = errors(&src);
    assert_eq!(ds.len(), 2, "{ds:#?}");
    assert_eq!(
        find(&ds, "listeners[0].routes[0].hash_policy[1]").message,
        "this entry names more than one hash source"
    );
    assert_eq!(
        find(&ds, "listeners[0].routes[0].hash_policy[2]").message,
        "this entry names no hash source"
    );

    let ok = GOOD.replace(
        "cluster = \"api\"\n[[clusters]]",
        "cluster = \"api\"\nhash_policy = [{ header = \"x-user\" }, { source_ip = true }]\naffinity_cookie = { name = \"lb\", ttl = \"1h\" }\n[[clusters]]",
    );
    let c = parse("t.toml", &ok).unwrap();
    let hp = &c.listeners[0].routes[0].hash_policy;
    assert_eq!(hp.sources.len(), 2);
    assert_eq!(
        hp.affinity_cookie.as_ref().unwrap().ttl,
        Some(std::time::Duration::from_secs(3600))
    );
}

#[test]
fn maglev_table_size_must_be_prime_and_parameters_must_fit_the_policy() {
    let ds = errors(&GOOD.replace(
        "name = \"api\"",
        "name = \"api\"\npolicy = \"maglev\"\nmaglev_table_size = 65536",
    ));
    let d = find(&ds, "clusters[0].policy");
    assert!(d.message.starts_with("maglev: "), "{d:?}");
    assert!(d.message.contains("65536"), "{d:?}");
    let ds = errors(&GOOD.replace(
        "name = \"api\"",
        "name = \"api\"\npolicy = \"round_robin\"\nmaglev_table_size = 65537",
    ));
    assert_eq!(
        find(&ds, "clusters[0].maglev_table_size").message,
        "maglev_table_size does not apply to policy \"round_robin\""
    );
    let c = parse(
        "t.toml",
        &GOOD.replace(
            "name = \"api\"",
            "name = \"api\"\npolicy = \"consistent_bounded\"\nbalance_factor = 1.5",
        ),
    )
    .unwrap();
    assert_eq!(c.clusters[0].policy.name(), "consistent_bounded");
    let c = parse(
        "t.toml",
        &GOOD.replace(
            "name = \"api\"",
            "name = \"api\"\npolicy = \"peak_ewma\"\nchoice_count = 3\newma_decay = \"5s\"",
        ),
    )
    .unwrap();
    assert_eq!(c.clusters[0].policy.name(), "peak_ewma");
}

const L4: &str = r#"
[[listeners]]
name = "db"
address = "127.0.0.1:5432"
protocol = "tcp"
cluster = "pg"
[[listeners]]
name = "dns"
address = "127.0.0.1:5432"
protocol = "udp"
cluster = "pg"
[[listeners]]
name = "tls"
address = "127.0.0.1:443"
protocol = "tls_passthrough"
[[listeners.routes]]
host = "*.example.com"
cluster = "pg"
[[clusters]]
name = "pg"
policy = "maglev"
endpoints = [{ address = "10.0.0.1:5432" }]
"#;

#[test]
fn l4_listeners_get_their_defaults() {
    let c = parse("t.toml", L4).unwrap();
    let (db, dns, tls) = (&c.listeners[0], &c.listeners[1], &c.listeners[2]);
    assert_eq!(db.protocol, ListenerProtocol::Tcp);
    assert_eq!(db.idle_timeout, defaults::TCP_IDLE_TIMEOUT);
    assert_eq!(db.hash_key, FlowHashKey::FiveTuple);
    assert_eq!(db.cluster.as_ref().map(|c| c.index), Some(0));
    assert_eq!(dns.idle_timeout, defaults::UDP_IDLE_TIMEOUT);
    assert_eq!(dns.max_sessions, Some(defaults::MAX_UDP_SESSIONS));
    assert_eq!(tls.protocol, ListenerProtocol::TlsPassthrough);
    assert_eq!(tls.inspect_timeout, defaults::INSPECT_TIMEOUT);
    assert_eq!(c.clusters[0].connect_attempts, defaults::CONNECT_ATTEMPTS);
    assert!(
        c.listeners.iter().all(|l| l.max_connections.is_none()),
        "no cap unless asked"
    );
}

#[test]
fn l4_fields_are_checked_against_the_listener_kind() {
    let ds = errors(&L4.replace(
        "protocol = \"tcp\"\ncluster = \"pg\"",
        "protocol = \"tcp\"\nmax_sessions = 5\nhash_key = \"four_tuple\"\naccept_proxy_protocol_from = [\"10.0.0.0/33\"]",
    ));
    assert_eq!(
        find(&ds, "listeners[0].cluster").message,
        "tcp listener \"db\" names no cluster to forward to"
    );
    assert_eq!(
        find(&ds, "listeners[0].max_sessions").message,
        "`max_sessions` does not apply to a tcp listener"
    );
    assert_eq!(
        find(&ds, "listeners[0].hash_key").message,
        "unknown hash key \"four_tuple\""
    );
    let d = find(&ds, "listeners[0].accept_proxy_protocol_from[0]");
    assert_eq!(d.message, "\"10.0.0.0/33\" is not an IP network");
    let ds = errors(&L4.replace("protocol = \"udp\"", "protocol = \"udpp\""));
    let d = find(&ds, "listeners[1].protocol");
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .starts_with("did you mean \"udp\"?"),
        "{d:?}"
    );
    let ds = errors(&L4.replace("host = \"*.example.com\"", "path_prefix = \"/x\""));
    assert_eq!(
        find(&ds, "listeners[2].routes[0].path_prefix").message,
        "`routes[0].path_prefix` does not apply to a tls_passthrough listener"
    );
}

#[test]
fn cluster_options_that_a_listener_cannot_honour_are_refused() {
    let ds = errors(&L4.replace(
        "policy = \"maglev\"",
        "policy = \"maglev\"\nproxy_protocol = \"v2\"",
    ));
    let d = find(&ds, "clusters[0].proxy_protocol");
    assert_eq!(
        d.message,
        "cluster \"pg\" sets `proxy_protocol`, but listener \"dns\" uses it and fulcrum sends PROXY headers on TCP only"
    );
    let ds = errors(&GOOD.replace(
        "name = \"api\"",
        "name = \"api\"\nmax_connections = 10\nproxy_protocol = \"v3\"",
    ));
    assert!(
        find(&ds, "clusters[0].proxy_protocol")
            .message
            .contains("\"v3\"")
    );
    let ds = errors(&GOOD.replace("name = \"api\"", "name = \"api\"\nmax_connections = 10"));
    assert!(
        find(&ds, "clusters[0].max_connections")
            .message
            .contains("it limits L4 flows only"),
        "{ds:#?}"
    );
}

#[test]
fn a_tcp_and_a_udp_listener_may_share_an_address_but_two_tcp_may_not() {
    assert!(parse("t.toml", L4).is_ok());
    let ds = errors(&L4.replace("protocol = \"udp\"", "protocol = \"tcp\""));
    assert_eq!(
        find(&ds, "listeners[1].address").message,
        "127.0.0.1:5432 is already used by listeners[0]"
    );
}

#[test]
fn http_limits_have_defaults_ranges_and_belong_to_http_listeners() {
    let c = parse("t.toml", GOOD).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.limits, HttpLimits::default());
    assert_eq!(l.tunnel_idle_timeout, defaults::TUNNEL_IDLE_TIMEOUT);
    let c = parse(
        "t.toml",
        &GOOD.replace(
            "address = \"127.0.0.1:8080\"",
            "address = \"127.0.0.1:8080\"\nmax_request_header_size = 16384\nmax_request_headers = 50\nhttp2_max_concurrent_streams = 10\nrequest_body_timeout = \"5s\"\ntunnel_idle_timeout = \"10m\"",
        ),
    )
    .unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.limits.max_request_header_size, 16384);
    assert_eq!(l.limits.max_request_headers, 50);
    assert_eq!(l.limits.http2_max_concurrent_streams, 10);
    assert_eq!(
        l.limits.request_body_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(l.tunnel_idle_timeout, std::time::Duration::from_secs(600));

    let ds = errors(&GOOD.replace(
        "address = \"127.0.0.1:8080\"",
        "address = \"127.0.0.1:8080\"\nmax_request_header_size = 4096\nhttp2_max_concurrent_streams = 0",
    ));
    let d = find(&ds, "listeners[0].max_request_header_size");
    assert_eq!(d.message, "4096 is out of range");
    assert_eq!(
        d.help.as_deref(),
        Some("use a whole number from 8192 to 1048576 (default 65536)")
    );
    find(&ds, "listeners[0].http2_max_concurrent_streams");

    let ds = errors(&L4.replace(
        "protocol = \"tcp\"",
        "protocol = \"tcp\"\nmax_request_headers = 10\ntunnel_idle_timeout = \"1h\"",
    ));
    assert_eq!(
        find(&ds, "listeners[0].max_request_headers").message,
        "`max_request_headers` does not apply to a tcp listener"
    );
    find(&ds, "listeners[0].tunnel_idle_timeout");
}

#[test]
fn configs_compare_so_a_reload_can_tell_what_changed() {
    let a = parse("t.toml", GOOD).unwrap();
    let b = parse("t.toml", GOOD).unwrap();
    assert_eq!(a, b);
    let weighted = parse(
        "t.toml",
        &GOOD.replace(
            "{ address = \"10.0.0.1:80\" }",
            "{ address = \"10.0.0.1:80\", weight = 3 }",
        ),
    )
    .unwrap();
    assert_ne!(a.clusters[0], weighted.clusters[0]);
    assert_eq!(a.listeners, weighted.listeners);
}

#[test]
fn type_errors_name_the_whole_path() {
    let ds = errors(&format!("[runtime]\nworkers = \"two\"\n{GOOD}"));
    assert_eq!(ds[0].field, "runtime.workers", "{ds:#?}");
    let ds = errors(&GOOD.replace(
        "{ address = \"10.0.0.1:80\" }",
        "{ address = \"10.0.0.1:80\" }, { address = \"10.0.0.2:80\", weight = \"heavy\" }",
    ));
    assert_eq!(ds[0].field, "clusters[0].endpoints[1].weight", "{ds:#?}");
}

#[test]
fn outlier_detection_is_on_by_default_and_its_fields_are_checked() {
    let c = parse("t.toml", GOOD).unwrap();
    let od = c.clusters[0]
        .outlier_detection
        .as_ref()
        .expect("on by default");
    assert_eq!(od.consecutive_5xx, defaults::OUTLIER_CONSECUTIVE_5XX);
    assert_eq!(od.max_ejection_percent, 10);
    assert_eq!(od.failure_percentage_threshold, None, "off unless set");
    let off = parse(
        "t.toml",
        &format!("{GOOD}[clusters.outlier_detection]\nenabled = false\n"),
    )
    .unwrap();
    assert_eq!(off.clusters[0].outlier_detection, None);
    let src = format!(
        "{GOOD}[clusters.outlier_detection]\nmax_ejection_percent = 150\nbase_ejection_time = \"0s\"\nconsecutive_5xx = -1\nfailure_percentage_threshold = 101\nsuccess_rate_stdev = 1900\n"
    );
    let ds = errors(&src);
    let d = find(&ds, "clusters[0].outlier_detection.max_ejection_percent");
    assert_eq!(d.line, 11);
    assert!(d.help.as_deref().unwrap().contains("0 to 100"), "{d:?}");
    find(&ds, "clusters[0].outlier_detection.base_ejection_time");
    find(&ds, "clusters[0].outlier_detection.consecutive_5xx");
    find(
        &ds,
        "clusters[0].outlier_detection.failure_percentage_threshold",
    );
    let d = find(&ds, "clusters[0].outlier_detection.success_rate_stdev");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("success_rate_stdev_factor"),
        "{d:?}"
    );
}

#[test]
fn retries_default_to_what_never_reached_the_origin_and_their_fields_are_checked() {
    let c = parse("t.toml", GOOD).unwrap();
    let cl = &c.clusters[0];
    assert_eq!(
        cl.retry_policy.retry_on,
        [RetryOn::ConnectFailure, RetryOn::RefusedStream]
    );
    assert_eq!(cl.retry_policy.num_retries, defaults::NUM_RETRIES);
    assert_eq!(
        cl.retry_budget,
        Some(RetryBudget {
            budget_percent: 20,
            min_retry_concurrency: 3
        })
    );
    assert_eq!(c.listeners[0].routes[0].retry_policy, None);
    let src = GOOD.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nretry_policy = { retry_on = [\"5xx\"], backoff_base_interval = \"10ms\" }\n",
    );
    let c = parse("t.toml", &src).unwrap();
    let route = c.listeners[0].routes[0].retry_policy.as_deref().unwrap();
    assert_eq!(route.retry_on, [RetryOn::ServerError]);
    assert_eq!(
        route.backoff_max_interval,
        std::time::Duration::from_millis(100),
        "ten times the base unless set"
    );
    let src = format!(
        "{GOOD}[clusters.retry_policy]\nretry_on = [\"connect-failure\", \"5xxx\"]\nnum_retries = 11\nretriable_status_codes = [503]\nbackoff_base_interval = \"1s\"\nbackoff_max_interval = \"100ms\"\n[clusters.retry_budget]\nbudget_percent = -1\n"
    );
    let ds = errors(&src);
    let d = find(&ds, "clusters[0].retry_policy.retry_on[1]");
    assert!(d.help.as_deref().unwrap().contains("5xx"), "{d:?}");
    find(&ds, "clusters[0].retry_policy.num_retries");
    find(&ds, "clusters[0].retry_policy.backoff_max_interval");
    find(&ds, "clusters[0].retry_budget.budget_percent");
    let src = format!("{GOOD}[clusters.retry_policy]\nretriable_status_codes = [503]\n");
    let d = errors(&src);
    let d = find(&d, "clusters[0].retry_policy.retriable_status_codes");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("retriable-status-codes")
    );
}

#[test]
fn slow_start_is_on_by_default_except_for_hash_policies() {
    let c = parse("t.toml", GOOD).unwrap();
    let ss = c.clusters[0].slow_start.as_ref().expect("on by default");
    assert_eq!(ss.window, defaults::SLOW_START_WINDOW);
    let maglev = GOOD.replace("name = \"api\"\n", "name = \"api\"\npolicy = \"maglev\"\n");
    let c = parse("t.toml", &maglev).unwrap();
    assert_eq!(c.clusters[0].slow_start, None, "hash policies are exempt");
    let ds = errors(&format!(
        "{maglev}[clusters.slow_start]\nwindow = \"10s\"\n"
    ));
    let d = find(&ds, "clusters[0].slow_start");
    assert!(d.message.contains("hash policies"), "{d:?}");
    let ds = errors(&format!(
        "{GOOD}[clusters.slow_start]\nwindow = \"0s\"\naggression = 50.0\nmin_weight_percent = 0\n"
    ));
    find(&ds, "clusters[0].slow_start.window");
    find(&ds, "clusters[0].slow_start.aggression");
    find(&ds, "clusters[0].slow_start.min_weight_percent");
}

#[test]
fn circuit_breakers_default_to_envoys_and_the_endpoint_breaker_is_opt_in() {
    let c = parse("t.toml", GOOD).unwrap();
    let cb = c.clusters[0].circuit_breakers;
    assert_eq!(
        (
            cb.max_connections,
            cb.max_pending_requests,
            cb.max_requests,
            cb.max_retries
        ),
        (1024, 1024, 1024, 3)
    );
    assert_eq!(cb.endpoint, None);
    let on = parse(
        "t.toml",
        &format!("{GOOD}[clusters.circuit_breakers]\nconsecutive_failures = 5\n"),
    )
    .unwrap();
    let e = on.clusters[0].circuit_breakers.endpoint.unwrap();
    assert_eq!(e.open_interval, defaults::BREAKER_OPEN_INTERVAL);
    let ds = errors(&format!(
        "{GOOD}[clusters.circuit_breakers]\nmax_requests = 0\nhalf_open_probes = 0\nopen_interval = \"soon\"\n"
    ));
    find(&ds, "clusters[0].circuit_breakers.max_requests");
    find(&ds, "clusters[0].circuit_breakers.half_open_probes");
    find(&ds, "clusters[0].circuit_breakers.open_interval");
}
