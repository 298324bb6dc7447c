//! What the server counts for operators, served as Prometheus text on
//! `/metrics` (see `web`). One process-wide set of metrics: counters and
//! gauges are atomics (`prometheus-client`), so the hot paths pay one
//! relaxed add; labelled series are looked up once per connection, never
//! per line. Queue depths are read from the router when scraped.
//!
//! Anything in the crate may count: `metrics().registrations.inc()`. The
//! TLS acceptor counts failed handshakes in `tls_handshake_failures`.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A connection's protocol (`text`, `json`, `irc`, `http`) and transport
/// (`tcp`, `ws`, `tls`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    pub protocol: &'static str,
    pub transport: &'static str,
}

/// An HTTP answer, by route and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Connections open now, by protocol and transport.
    pub connections: Family<ConnLabels, Gauge>,
    /// Connections that chose a protocol, since start.
    pub connections_total: Family<ConnLabels, Counter>,
    /// Nicknames taken by new connections.
    pub registrations: Counter,
    /// Lines read from clients and handed to their session.
    pub lines_in: Counter,
    /// Room and private messages the chat accepted.
    pub messages_in: Counter,
    /// Events and replies written to clients (one per recipient: deliveries).
    pub deliveries: Counter,
    /// Bytes written to clients.
    pub bytes_out: Counter,
    /// Clients dropped because their send queue overflowed.
    pub slow_consumers: Counter,
    /// Times flood control started holding a connection's lines back.
    pub flood_delayed: Counter,
    /// Clients dropped for sending more than `recvq` ahead (Excess Flood).
    pub excess_flood: Counter,
    /// Bytes waiting in all send queues (set when scraped).
    pub sendq_bytes: Gauge,
    /// The fullest send queue, in bytes (set when scraped).
    pub sendq_max_bytes: Gauge,
    /// Memory the send queues' buffers hold, queued or not (set when scraped).
    pub sendq_buffer_bytes: Gauge,
    /// Connections parked without a task (set when scraped).
    pub connections_parked: Gauge,
    /// Times a quiet connection parked (gave up its task).
    pub parks: Counter,
    /// Items waiting in all send queues (set when scraped).
    pub sendq_items: Gauge,
    /// Facts submitted to the store and not yet committed (set when scraped).
    pub store_pending_facts: Gauge,
    /// Times a connection held its client's lines back because the store
    /// was behind (`db_max_pending`).
    pub store_paced: Counter,
    /// Seconds each of the store writer's own checkpoints of a WAL past
    /// `db_wal_max` took (commits wait meanwhile); the count is how
    /// often the WAL was made to start again.
    pub store_wal_restart_seconds: Histogram,
    /// Seconds each store commit (one transaction per batch) took.
    pub store_commit_seconds: Histogram,
    /// Facts per store commit.
    pub store_batch_facts: Histogram,
    /// Seconds the end of each store commit took (`COMMIT`: writing the
    /// WAL and, with `db_sync = full`, its fsync).
    pub store_sync_seconds: Histogram,
    /// Seconds each `fdatasync` of the WAL took on the sync thread
    /// (`db_sync = full`: the pipeline that releases committed lines).
    pub store_fsync_seconds: Histogram,
    /// Seconds from a submission to the store to its release (its events
    /// may be shown): waiting for the writer, then its commit.
    pub store_release_seconds: Histogram,
    /// TLS handshakes that failed (bad client hello, no certificate, stall).
    pub tls_handshake_failures: Counter,
    /// HTTP answers by route and status.
    pub http_responses: Family<HttpLabels, Counter>,
    /// Times a thread found the chat's lock held and had to wait for it.
    pub hub_lock_contended: Counter,
    /// Seconds threads spent waiting for the chat's lock (timed only when
    /// it was held: an uncontended lock costs no clock read).
    pub hub_lock_wait_seconds: Counter<f64, AtomicU64>,
    /// Times a line found its room's order lock held (another line to
    /// the same room) and had to wait for it.
    pub room_lock_contended: Counter,
    /// Seconds lines spent waiting for their rooms' order locks.
    pub room_lock_wait_seconds: Counter<f64, AtomicU64>,
    /// Times the router or a connection found a member queue's lock held.
    pub queue_lock_contended: Counter,
    /// Seconds spent waiting for member queues' locks (contended only).
    pub queue_lock_wait_seconds: Counter<f64, AtomicU64>,
    /// Times a connection went on reading after the pacer had stopped it
    /// (`ingest_budget`: ingest paced by egress).
    pub reads_paced: Counter,
    /// History requests (a join's replay, mostly) answered at once with
    /// nothing, without reading the store: the room never had a message.
    pub history_unread: Counter,
    /// Deliveries queued for clients that keep up, as the pacer counts
    /// them (set when scraped).
    pub ingest_queued: Gauge,
    /// Threads of the runtime that runs connections and the chat (the
    /// `workers` setting; set when the server starts).
    pub runtime_workers: Gauge,
    /// Room lines this node read from the cluster (only rooms with members
    /// here), fills of gaps included.
    pub cluster_lines_read: Counter,
    /// Facts other than room lines this node read from the cluster.
    pub cluster_facts_read: Counter,
    /// Gaps found in what the cluster republishes, and filled from its stream.
    pub cluster_gaps_filled: Counter,
    /// Consumers this node made to read its cluster's stream (gap fills,
    /// a followed room's history, catch-ups).
    pub cluster_fill_consumers: Counter,
    /// Live facts the NATS client dropped because this node's reader was
    /// behind (its subscription buffer full: `cluster_subscription_capacity`).
    pub cluster_slow_consumers: Counter,
    /// Batches of facts the cluster reader handed to the hub (each one
    /// lock of the hub).
    pub cluster_fact_batches: Counter,
    /// Messages of several facts (bundles) this node read from the cluster.
    pub cluster_bundles_read: Counter,
    /// Facts other than lines held behind one waiting for a gap on another
    /// subject (applied in the stream's order once it is filled).
    pub cluster_facts_held: Counter,
    /// The members of `connections` and `connections_total` looked up so
    /// far, found again by comparing their labels (a handful of static
    /// strings) instead of hashing them into the families' maps: each
    /// connection looks up both.
    conn_gauges: Handles<Gauge>,
    conn_counters: Handles<Counter>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("natter");
        let m = Metrics {
            connections: Family::default(),
            connections_total: Family::default(),
            registrations: Counter::default(),
            lines_in: Counter::default(),
            messages_in: Counter::default(),
            deliveries: Counter::default(),
            bytes_out: Counter::default(),
            slow_consumers: Counter::default(),
            flood_delayed: Counter::default(),
            excess_flood: Counter::default(),
            sendq_bytes: Gauge::default(),
            sendq_max_bytes: Gauge::default(),
            sendq_buffer_bytes: Gauge::default(),
            connections_parked: Gauge::default(),
            parks: Counter::default(),
            sendq_items: Gauge::default(),
            store_pending_facts: Gauge::default(),
            store_paced: Counter::default(),
            store_wal_restart_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            store_commit_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            store_batch_facts: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            store_sync_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            store_fsync_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            store_release_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            tls_handshake_failures: Counter::default(),
            http_responses: Family::default(),
            hub_lock_contended: Counter::default(),
            hub_lock_wait_seconds: Counter::default(),
            room_lock_contended: Counter::default(),
            room_lock_wait_seconds: Counter::default(),
            queue_lock_contended: Counter::default(),
            queue_lock_wait_seconds: Counter::default(),
            reads_paced: Counter::default(),
            history_unread: Counter::default(),
            ingest_queued: Gauge::default(),
            runtime_workers: Gauge::default(),
            cluster_lines_read: Counter::default(),
            cluster_facts_read: Counter::default(),
            cluster_gaps_filled: Counter::default(),
            cluster_fill_consumers: Counter::default(),
            cluster_slow_consumers: Counter::default(),
            cluster_fact_batches: Counter::default(),
            cluster_bundles_read: Counter::default(),
            cluster_facts_held: Counter::default(),
            conn_gauges: Handles::default(),
            conn_counters: Handles::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "connections",
            "Connections open now, by protocol and transport",
            m.connections.clone(),
        );
        r.register(
            "connections_opened",
            "Connections that chose a protocol, by protocol and transport",
            m.connections_total.clone(),
        );
        r.register(
            "registrations",
            "Nicknames taken by new connections",
            m.registrations.clone(),
        );
        r.register("lines_in", "Lines read from clients", m.lines_in.clone());
        r.register(
            "messages_in",
            "Room and private messages accepted",
            m.messages_in.clone(),
        );
        r.register(
            "deliveries",
            "Events and replies written to clients, one per recipient",
            m.deliveries.clone(),
        );
        r.register("bytes_out", "Bytes written to clients", m.bytes_out.clone());
        r.register(
            "slow_consumers",
            "Clients dropped because their send queue overflowed",
            m.slow_consumers.clone(),
        );
        r.register(
            "flood_delayed",
            "Times flood control started holding a connection's lines back",
            m.flood_delayed.clone(),
        );
        r.register(
            "excess_flood",
            "Clients dropped for sending more than recvq ahead",
            m.excess_flood.clone(),
        );
        r.register(
            "sendq_bytes",
            "Bytes waiting in all send queues",
            m.sendq_bytes.clone(),
        );
        r.register(
            "sendq_max_bytes",
            "Bytes waiting in the fullest send queue",
            m.sendq_max_bytes.clone(),
        );
        r.register(
            "sendq_buffer_bytes",
            "Memory the send queues' buffers hold (an emptied one is kept sendq_keep)",
            m.sendq_buffer_bytes.clone(),
        );
        r.register(
            "parks",
            "Times a quiet connection parked, giving up its task (park_after)",
            m.parks.clone(),
        );
        r.register(
            "connections_parked",
            "Quiet connections parked in a shared poller, without a task of their own (park_after)",
            m.connections_parked.clone(),
        );
        r.register(
            "sendq_items",
            "Items waiting in all send queues",
            m.sendq_items.clone(),
        );
        r.register(
            "store_pending_facts",
            "Facts waiting for the store's commit",
            m.store_pending_facts.clone(),
        );
        r.register(
            "store_paced",
            "Times a connection held lines back because the store was behind (db_max_pending)",
            m.store_paced.clone(),
        );
        r.register(
            "store_wal_restart_seconds",
            "Seconds the store writer's checkpoints of a WAL past db_wal_max took (commits wait)",
            m.store_wal_restart_seconds.clone(),
        );
        r.register(
            "store_commit_seconds",
            "Time each store commit took",
            m.store_commit_seconds.clone(),
        );
        r.register(
            "store_batch_facts",
            "Facts written per store commit",
            m.store_batch_facts.clone(),
        );
        r.register(
            "store_sync_seconds",
            "Time the COMMIT (WAL write and fsync) of each store commit took",
            m.store_sync_seconds.clone(),
        );
        r.register(
            "store_fsync_seconds",
            "Time each fdatasync of the WAL took on the store's sync thread (db_sync = full)",
            m.store_fsync_seconds.clone(),
        );
        r.register(
            "store_release_seconds",
            "Time from a submission to the store to its events' release",
            m.store_release_seconds.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed",
            m.tls_handshake_failures.clone(),
        );
        r.register(
            "http_responses",
            "HTTP answers by route and status",
            m.http_responses.clone(),
        );
        r.register(
            "hub_lock_contended",
            "Times the chat's lock was found held (by a writer, or readers when writing) and waited for",
            m.hub_lock_contended.clone(),
        );
        r.register(
            "hub_lock_wait_seconds",
            "Time spent waiting for the chat's lock",
            m.hub_lock_wait_seconds.clone(),
        );
        r.register(
            "room_lock_contended",
            "Times a line found its room's order lock held and waited for",
            m.room_lock_contended.clone(),
        );
        r.register(
            "room_lock_wait_seconds",
            "Time spent waiting for rooms' order locks",
            m.room_lock_wait_seconds.clone(),
        );
        r.register(
            "queue_lock_contended",
            "Times a member queue's lock was found held and waited for",
            m.queue_lock_contended.clone(),
        );
        r.register(
            "queue_lock_wait_seconds",
            "Time spent waiting for member queues' locks",
            m.queue_lock_wait_seconds.clone(),
        );
        r.register(
            "reads_paced",
            "Times a connection went on reading after the pacer had stopped it",
            m.reads_paced.clone(),
        );
        r.register(
            "history_unread",
            "History requests answered at once with nothing, without a store read (the room never had a message)",
            m.history_unread.clone(),
        );
        r.register(
            "ingest_queued",
            "Deliveries queued for clients that keep up, as the pacer counts them",
            m.ingest_queued.clone(),
        );
        r.register(
            "runtime_workers",
            "Worker threads running connections and the chat (the workers setting)",
            m.runtime_workers.clone(),
        );
        r.register(
            "cluster_lines_read",
            "Room lines read from the cluster (rooms with members on this node)",
            m.cluster_lines_read.clone(),
        );
        r.register(
            "cluster_facts_read",
            "Facts other than room lines read from the cluster",
            m.cluster_facts_read.clone(),
        );
        r.register(
            "cluster_gaps_filled",
            "Gaps in what the cluster republishes, filled from its stream",
            m.cluster_gaps_filled.clone(),
        );
        r.register(
            "cluster_fill_consumers",
            "Consumers made to read the cluster's stream (gap fills, a followed room's history, catch-ups)",
            m.cluster_fill_consumers.clone(),
        );
        r.register(
            "cluster_slow_consumers",
            "Times the NATS client dropped live facts because the reader was behind (subscription buffer full)",
            m.cluster_slow_consumers.clone(),
        );
        r.register(
            "cluster_fact_batches",
            "Batches of facts read from the cluster handed to the hub (one lock of the hub each)",
            m.cluster_fact_batches.clone(),
        );
        r.register(
            "cluster_bundles_read",
            "Messages of several facts (bundles) read from the cluster",
            m.cluster_bundles_read.clone(),
        );
        r.register(
            "cluster_facts_held",
            "Facts other than lines held behind one waiting for a gap on another subject",
            m.cluster_facts_held.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The open-connections gauge for a protocol and transport (look it up
    /// once per connection, not per line).
    pub fn connection(&self, protocol: &'static str, transport: &'static str) -> Gauge {
        let labels = ConnLabels {
            protocol,
            transport,
        };
        self.conn_gauges
            .get(labels, |l| self.connections.get_or_create_owned(l))
    }

    /// Counts a connection whose protocol is now settled.
    pub fn opened(&self, protocol: &'static str, transport: &'static str) {
        let labels = ConnLabels {
            protocol,
            transport,
        };
        self.conn_counters
            .get(labels, |l| self.connections_total.get_or_create_owned(l))
            .inc();
    }
}

/// Members of a family by labels (a few: one per protocol and transport
/// seen), each a handle on the family's own metric.
struct Handles<M>(parking_lot::RwLock<Vec<(ConnLabels, M)>>);

impl<M> Default for Handles<M> {
    fn default() -> Self {
        Handles(parking_lot::RwLock::new(Vec::new()))
    }
}

impl<M: Clone> Handles<M> {
    /// The member for `labels`, taken from the family by `make` the first time.
    fn get(&self, labels: ConnLabels, make: impl FnOnce(&ConnLabels) -> M) -> M {
        if let Some((_, m)) = self.0.read().iter().find(|(l, _)| *l == labels) {
            return m.clone();
        }
        let mut all = self.0.write();
        if let Some((_, m)) = all.iter().find(|(l, _)| *l == labels) {
            return m.clone();
        }
        let m = make(&labels);
        all.push((labels, m.clone()));
        m
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_text() {
        let m = Metrics::new();
        m.registrations.inc_by(3);
        let g = m.connection("json", "ws");
        g.inc();
        let text = m.encode();
        assert!(text.contains("natter_registrations_total 3"), "{text}");
        assert!(
            text.contains("natter_connections{protocol=\"json\",transport=\"ws\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn handles_found_again_count_in_the_same_metric() {
        let m = Metrics::new();
        m.opened("text", "tcp");
        let (a, b) = (m.connection("text", "tcp"), m.connection("text", "tcp"));
        a.inc();
        b.inc();
        m.opened("text", "tcp");
        m.opened("irc", "tls");
        m.connection("irc", "tls").inc();
        let text = m.encode();
        for line in [
            "natter_connections{protocol=\"text\",transport=\"tcp\"} 2",
            "natter_connections{protocol=\"irc\",transport=\"tls\"} 1",
            "natter_connections_opened_total{protocol=\"text\",transport=\"tcp\"} 2",
            "natter_connections_opened_total{protocol=\"irc\",transport=\"tls\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert_eq!(m.conn_gauges.0.read().len(), 2, "one handle per labels");
    }
}
