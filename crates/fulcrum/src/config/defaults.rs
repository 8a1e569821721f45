//! Every default in one place, each with the reason for it. The annotated
//! example config (`examples/fulcrum.toml`) repeats these values.

use std::time::Duration;

/// Loopback only: the admin API can read the whole config and must not be
/// exposed by accident (Envoy's admin has no default; HAProxy's stats are opt-in).
pub const ADMIN_ADDRESS: &str = "127.0.0.1:9901";
/// Long enough for a slow request to finish on a rolling restart, short enough
/// for an orchestrator's default grace period (Kubernetes: 30 s).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// A load balancer in front (or Kubernetes endpoints) needs a few seconds
/// to see `/ready` fail and stop sending; listeners keep accepting until
/// then. HAProxy's `grace` does the same and defaults to 0; 5 s covers a
/// couple of typical 2 s health-check intervals. SIGINT (Ctrl-C) skips it.
pub const SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
/// Envoy's default cluster connect timeout; on a LAN a connect takes well
/// under a millisecond, so 5 s only ever fires on a black-holed address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default route timeout (time to the upstream's response headers).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Idle upstream connections are closed after this; below common backend
/// keep-alive timeouts (NGINX 75 s, Node 5 s is the odd one out) would be ideal,
/// but 60 s matches HAProxy's `timeout http-keep-alive` guidance for pools.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client must send a complete request head within this (slowloris guard;
/// hyper's and NGINX's `client_header_timeout` default are both in this range).
pub const REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A client connection with no request in flight is closed after this
/// (NGINX `keepalive_timeout` 75 s, Envoy's `idle_timeout` 1 h; a minute frees
/// idle sockets sooner without hurting real keep-alive reuse).
pub const DOWNSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A TCP flow with no byte either way is closed after this (Envoy's
/// `tcp_proxy` idle_timeout); long-lived protocols (databases, Redis pub/sub)
/// idle for minutes, so the HTTP minute would cut them.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// A WebSocket with no byte either way is closed after this (HAProxy's
/// `timeout tunnel` is typically set to an hour for WebSockets); chat and
/// notification sockets sit quiet for minutes between messages, so the
/// HTTP keep-alive minute would cut them.
pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// A client must send the next piece of a request body within this, or get
/// 408 and a closed connection (NGINX's `client_body_timeout`, same
/// default); a body may take longer in total as long as it keeps moving.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head (HTTP/1.1) or decoded header list (HTTP/2), bytes.
/// Envoy allows 60 KiB, NGINX 32 KiB (4 x 8 KiB buffers), HAProxy about
/// 15 KiB; 64 KiB fits large cookies and bearer tokens, and bounds what a
/// client can make fulcrum buffer before a request is routed.
pub const MAX_REQUEST_HEADER_SIZE: u32 = 64 * 1024;
/// Most header fields in one request: Envoy's and hyper's 100 (HAProxy 101).
pub const MAX_REQUEST_HEADERS: u32 = 100;
/// Open streams per HTTP/2 connection: HAProxy's 100 (NGINX 128, the
/// RFC's suggested minimum 100). Each open stream can hold a request in
/// flight, so this bounds one client's share of a worker.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// A UDP session with no datagram either way is forgotten after this (Envoy's
/// `udp_proxy` default); DNS needs a second, but NAT-like protocols need more.
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for a PROXY protocol header and a ClientHello to arrive (Envoy's
/// `listener_filters_timeout`).
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Endpoints tried per L4 flow when a connect fails; HAProxy's `retries 3`
/// redispatches like this, and with health checks between ticks 3 tries
/// rides out one endpoint that died since the last check.
pub const CONNECT_ATTEMPTS: u32 = 3;
/// UDP sessions per listener: bounds the flow table (a source-address flood
/// cannot grow it without limit); 64 Ki sessions is about 20 MiB.
pub const MAX_UDP_SESSIONS: u32 = 65_536;
/// Balancing policy when a cluster names none. `fulcrum simulate`
/// (docs/simulation/report.md) shows peak-EWMA sending a backend that turned
/// 10x slow 0.8% of requests against P2C's 2.2% and round robin's 10%, and
/// it is the only policy here that also steers away from endpoints failing
/// fast; HAProxy and Envoy default to round robin, which keeps feeding a slow
/// backend its full share.
pub const POLICY: &str = "peak_ewma";
/// Envoy's `least_request` default choice count: power of two choices.
pub const CHOICE_COUNT: u32 = 2;

/// Health checks: HAProxy's `inter 2s`, `rise 2`, `fall 3` are the defaults
/// operators know; a 1 s timeout keeps a hung check from overlapping the next.
pub const HC_INTERVAL: Duration = Duration::from_secs(2);
pub const HC_TIMEOUT: Duration = Duration::from_secs(1);
/// Jitter spreads checks of many endpoints so they do not fire in lockstep.
pub const HC_JITTER: Duration = Duration::from_millis(200);
pub const HC_HEALTHY_THRESHOLD: u32 = 2;
pub const HC_UNHEALTHY_THRESHOLD: u32 = 3;
pub const HC_PATH: &str = "/";
pub const HC_METHOD: &str = "GET";
/// HAProxy's `option httpchk` passes 2xx and 3xx.
pub const HC_EXPECTED_STATUSES: &str = "200-399";
/// A client gets this long from accept to a finished TLS handshake (HAProxy's
/// `timeout client` bounds it at the same order; a real handshake takes a few
/// round trips, so 10 s only fires on a stalled or hostile client).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS 1.2 is still needed by some clients (older Java, embedded); 1.0/1.1
/// are deprecated (RFC 8996) and rustls does not implement them.
pub const TLS_MIN_VERSION: &str = "1.2";
/// HTTP/2 first, HTTP/1.1 for clients that cannot: one port serves both.
pub const TLS_ALPN: [&str; 2] = ["h2", "http/1.1"];
/// Envoy's XFCC header: operators and backends coming from a mesh know it.
pub const CLIENT_CERT_HEADER: &str = "x-forwarded-client-cert";
/// Envoy's `healthy_panic_threshold` default: when more than half of a
/// cluster fails its checks, the checks are more likely wrong (a deep check
/// failing on a shared dependency) than half the fleet dead, and sending
/// to every endpoint serves more requests than crushing the few left.
pub const PANIC_THRESHOLD: u32 = 50;

/// Outlier detection (passive health checking), Envoy's defaults throughout.
/// Five failures in a row is well past a blip (a deploy's single reset) yet
/// ejects a dead endpoint within a handful of requests, long before an
/// active check's `fall 3` at a 2 s interval would.
pub const OUTLIER_CONSECUTIVE_5XX: u32 = 5;
/// Gateway failures (502, 503, 504, connect failures, resets, timeouts)
/// mean the endpoint or the path to it is broken, not the request.
pub const OUTLIER_CONSECUTIVE_GATEWAY_FAILURE: u32 = 5;
/// How often the statistical detectors look at the last interval's
/// requests, and how often an ejection count decays by one.
pub const OUTLIER_INTERVAL: Duration = Duration::from_secs(10);
/// An ejection lasts this times the number of recent ejections: long
/// enough for a restart to finish, and a flapping endpoint stays out longer
/// each time.
pub const OUTLIER_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
/// The longest an ejection lasts (Envoy's 300 s), so a repeat offender is
/// still retried every few minutes.
pub const OUTLIER_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// At most this share of a cluster is ejected at once (always at least
/// one): passive signals can be wrong too (a client sending requests that
/// make every endpoint fail), and must never empty a cluster.
pub const OUTLIER_MAX_EJECTION_PERCENT: u32 = 10;
/// Success-rate detector: ejected below mean - 1.9 stdev (Envoy's
/// `success_rate_stdev_factor` 1900, in thousandths), among at least 5
/// endpoints with at least 100 requests in the interval, so a handful of
/// requests never makes a statistic.
pub const OUTLIER_SUCCESS_RATE_STDEV_FACTOR: u32 = 1900;
pub const OUTLIER_SUCCESS_RATE_MINIMUM_HOSTS: u32 = 5;
pub const OUTLIER_SUCCESS_RATE_REQUEST_VOLUME: u32 = 100;
/// Failure-percentage detector: off unless a threshold is set (Envoy's
/// `enforcing_failure_percentage` is 0 too); its volume bars are Envoy's.
pub const OUTLIER_FAILURE_PERCENTAGE_MINIMUM_HOSTS: u32 = 5;
pub const OUTLIER_FAILURE_PERCENTAGE_REQUEST_VOLUME: u32 = 50;

/// Retries: what is retried when nothing says otherwise. Only failures
/// where the request never reached the origin (a refused or failed connect,
/// an HTTP/2 stream the origin refused before processing it), so a retry
/// can never run a request twice; the rest is opt-in per cluster or route.
pub const RETRY_ON: [&str; 2] = ["connect-failure", "refused-stream"];
/// Envoy's `num_retries` default is 1 and HAProxy's `retries` 3; with every
/// retry on an endpoint not tried yet, two ride out two dead endpoints
/// between health-check ticks without lengthening a hopeless request much.
pub const NUM_RETRIES: u32 = 2;
/// Envoy's retry back-off: full jitter between 0 and base x 2^(retry - 1),
/// capped at 10 x base, so retries from many requests spread out instead of
/// arriving together at the next endpoint.
pub const RETRY_BACKOFF_BASE: Duration = Duration::from_millis(25);
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(250);
/// Retry budget (Envoy's and Linkerd's): retries in flight may be at most
/// 20 % of the cluster's active requests, and at least 3 at a time so a
/// quiet cluster can still retry. A cluster-wide outage therefore adds at
/// most a fifth more load instead of tripling it (the retry storm).
pub const RETRY_BUDGET_PERCENT: u32 = 20;
pub const RETRY_MIN_CONCURRENCY: u32 = 3;

/// Slow start: an endpoint joining or returning after start-up ramps over
/// 30 s (Envoy's usual setting; long enough for caches and connection
/// pools to warm, short enough that a recovered endpoint takes its share
/// within a health-check minute). Linear (aggression 1.0), from 10 % of its
/// weight (Envoy's `min_weight_percent`), so it gets some traffic at once
/// and its latency is measured.
pub const SLOW_START_WINDOW: Duration = Duration::from_secs(30);
pub const SLOW_START_AGGRESSION_MILLI: u32 = 1000;
pub const SLOW_START_MIN_WEIGHT_PERCENT: u32 = 10;

/// Circuit breakers per cluster, Envoy's defaults: at most 1024 upstream
/// connections, 1024 requests waiting for a connection and 1024 requests
/// in flight, so one slow cluster cannot take every socket and every
/// worker's memory with it; past a limit a request fails at once (503
/// `overflow`) instead of queueing behind the slow ones. Raise them for a
/// cluster that legitimately serves more concurrency.
pub const MAX_UPSTREAM_CONNECTIONS: u32 = 1024;
pub const MAX_PENDING_REQUESTS: u32 = 1024;
pub const MAX_REQUESTS: u32 = 1024;
/// Retries in flight when the retry budget is turned off (Envoy's
/// `max_retries` breaker; with a budget, the budget decides).
pub const MAX_RETRIES: u32 = 3;
/// The per-endpoint breaker is off by default (`consecutive_failures = 0`):
/// outlier detection already ejects on the same signal for every worker.
/// When it is turned on, an open breaker waits 5 s before probing (long
/// enough for a restart's port to close, short against outlier detection's
/// 30 s), with one probe at a time.
pub const BREAKER_OPEN_INTERVAL: Duration = Duration::from_secs(5);
pub const BREAKER_HALF_OPEN_PROBES: u32 = 1;
