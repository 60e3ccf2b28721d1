//! The server's Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    route: String,
    status: String,
}

/// Labels of a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

type HistogramFamily = Family<Route, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: HistogramFamily,
    batch_requests: Histogram,
    batch_tokens: Histogram,
    /// Requests admitted and not yet answered (queued or running).
    pub queue_depth: Gauge,
    tokens: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("uae");
        let requests = Family::<Request, Counter>::default();
        registry.register("requests", "HTTP requests answered, by route and status", requests.clone());
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register("request_duration_seconds", "Time from request to response, by route", latency.clone());
        let batch_requests = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register("batch_requests", "Requests merged into one inference batch", batch_requests.clone());
        let batch_tokens = Histogram::new(exponential_buckets(16.0, 2.0, 12));
        registry.register("batch_tokens", "Tokens in one inference batch", batch_tokens.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Requests admitted and not yet answered", queue_depth.clone());
        let tokens = Counter::default();
        registry.register("input_tokens", "Input tokens of answered inference requests", tokens.clone());
        Self { registry, requests, latency, batch_requests, batch_tokens, queue_depth, tokens }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&Request { route: route.into(), status: status.to_string() }).inc();
        self.latency.get_or_create(&Route { route: route.into() }).observe(seconds);
    }

    /// Counts one inference batch of `requests` requests and `tokens` tokens.
    pub fn observe_batch(&self, requests: usize, tokens: usize) {
        self.batch_requests.observe(requests as f64);
        self.batch_tokens.observe(tokens as f64);
    }

    /// Counts the input tokens of one request.
    pub fn add_tokens(&self, tokens: usize) {
        self.tokens.inc_by(tokens as u64);
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
