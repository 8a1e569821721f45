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
    assert_eq!(cl.policy, fulcrum_balance::Policy::RoundRobin);
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
    let ds = errors(&GOOD.replace("name = \"api\"", "name = \"api\"\nchoice_count = 3"));
    assert_eq!(
        find(&ds, "clusters[0].choice_count").message,
        "choice_count only applies to policy \"least_request\", not \"round_robin\""
    );
}

#[test]
fn display_is_file_line_column_field() {
    let e = parse("conf/lb.toml", "[admin]\nadress = \"x\"\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("error: conf/lb.toml:2:1: admin.adress: unknown field `adress`\n  help: did you mean `address`?\n"), "{text}");
}
