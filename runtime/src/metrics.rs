//! Prometheus metrics: what an operator needs to see Palaver's load and trouble. One registry per server (tests run
//! several servers in one process), rendered in the text format at `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    /// WebSocket connections open now.
    pub connections_open: IntGauge,
    /// WebSocket handshakes completed.
    pub handshakes: IntCounter,
    /// Command frames received from clients.
    pub frames_in: IntCounter,
    /// Frames queued to clients (replies and events).
    pub frames_out: IntCounter,
    /// Room events queued to subscribed connections (one per recipient).
    pub deliveries: IntCounter,
    /// Time to fan one event out to a room's local subscribers.
    pub fanout_seconds: Histogram,
    /// Connections closed because their outbound queue overflowed (1013).
    pub slow_consumer_closes: IntCounter,
    /// Chat messages stored (acknowledged).
    pub messages_stored: IntCounter,
    /// Messages per group-commit transaction.
    pub batch_size: Histogram,
    /// Time of one group-commit transaction.
    pub batch_seconds: Histogram,
    /// Requests or commands refused by a rate limit, by limit.
    pub rate_limited: IntCounterVec,
    /// PostgreSQL connections checked out of the pool now (0 on SQLite).
    pub db_pool_in_use: IntGauge,
    /// 1 while this node is connected to NATS (clustered nodes only).
    pub nats_connected: IntGauge,
    /// Messages this node published to the other nodes (room events, presence, heartbeats, control).
    pub cluster_published: IntCounter,
    /// Room events this node received from the other nodes.
    pub cluster_received: IntCounter,
    /// Messages not sent to the other nodes because the outbox was full or NATS did not take them (room events
    /// repair from the database, presence by a snapshot).
    pub cluster_dropped: IntCounter,
    /// Gaps in a room's seqs filled from the database.
    pub cluster_gaps_filled: IntCounter,
    /// Rooms caught up to the database's newest seq by the position check.
    pub cluster_catch_ups: IntCounter,
    /// Nodes of the cluster alive as this node sees them, itself included while it is in the cluster.
    pub cluster_nodes_alive: IntGauge,
    /// Nodes this node counted dead after they fell silent.
    pub cluster_dead_nodes: IntCounter,
}

fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    // Names are fixed and unique below, so registration cannot clash; a failure would only lose the metric.
    if let Err(err) = registry.register(Box::new(metric.clone())) {
        tracing::warn!(error = %err, "metric not registered");
    }
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    registered(
        registry,
        IntCounter::new(name, help).expect("valid metric name"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(
        registry,
        IntGauge::new(name, help).expect("valid metric name"),
    )
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    registered(
        registry,
        Histogram::with_opts(opts).expect("valid histogram"),
    )
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("palaver".into()), None).expect("valid registry prefix");
        let seconds = prometheus::exponential_buckets(0.000_05, 2.0, 16).expect("valid buckets");
        let sizes = prometheus::exponential_buckets(1.0, 2.0, 12).expect("valid buckets");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests or commands refused by a rate limit",
            ),
            &["limit"],
        )
        .expect("valid metric");
        Metrics {
            connections_open: gauge(
                &registry,
                "connections_open",
                "WebSocket connections open now",
            ),
            handshakes: counter(
                &registry,
                "handshakes_total",
                "WebSocket handshakes completed",
            ),
            frames_in: counter(
                &registry,
                "frames_in_total",
                "Command frames received from clients",
            ),
            frames_out: counter(&registry, "frames_out_total", "Frames queued to clients"),
            deliveries: counter(
                &registry,
                "deliveries_total",
                "Room events queued to subscribed connections",
            ),
            fanout_seconds: histogram(
                &registry,
                "fanout_seconds",
                "Time to fan one event out locally",
                seconds.clone(),
            ),
            slow_consumer_closes: counter(
                &registry,
                "slow_consumer_closes_total",
                "Connections closed because their outbound queue overflowed",
            ),
            messages_stored: counter(&registry, "messages_stored_total", "Chat messages stored"),
            batch_size: histogram(
                &registry,
                "group_commit_batch_size",
                "Messages per group-commit transaction",
                sizes,
            ),
            batch_seconds: histogram(
                &registry,
                "group_commit_seconds",
                "Time of one group-commit transaction",
                seconds,
            ),
            rate_limited: registered(&registry, rate_limited),
            db_pool_in_use: gauge(
                &registry,
                "db_pool_in_use",
                "PostgreSQL connections checked out now",
            ),
            nats_connected: gauge(&registry, "nats_connected", "1 while connected to NATS"),
            cluster_published: counter(
                &registry,
                "cluster_published_total",
                "Messages published to the other nodes",
            ),
            cluster_received: counter(
                &registry,
                "cluster_received_total",
                "Room events received from the other nodes",
            ),
            cluster_dropped: counter(
                &registry,
                "cluster_dropped_total",
                "Messages to the other nodes dropped (outbox full, or NATS did not take them)",
            ),
            cluster_gaps_filled: counter(
                &registry,
                "cluster_gaps_filled_total",
                "Gaps in a room's seqs filled from the database",
            ),
            cluster_catch_ups: counter(
                &registry,
                "cluster_catch_ups_total",
                "Rooms caught up to the database's newest seq by the position check",
            ),
            cluster_nodes_alive: gauge(
                &registry,
                "cluster_nodes_alive",
                "Nodes of the cluster alive, this one included while it is in the cluster",
            ),
            cluster_dead_nodes: counter(
                &registry,
                "cluster_dead_nodes_total",
                "Nodes counted dead after falling silent",
            ),
            registry,
        }
    }

    /// Every metric in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %err, "metrics could not be encoded");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.handshakes.inc();
        metrics
            .rate_limited
            .with_label_values(&["ws_messages"])
            .inc_by(3);
        metrics.batch_size.observe(17.0);
        let text = metrics.render();
        assert!(text.contains("palaver_handshakes_total 1"), "{text}");
        assert!(
            text.contains("palaver_rate_limited_total{limit=\"ws_messages\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("palaver_group_commit_batch_size_count 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE palaver_connections_open gauge"),
            "{text}"
        );
    }
}
