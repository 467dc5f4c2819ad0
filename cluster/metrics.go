package cluster

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus metrics. Register them with Collectors.
type metrics struct {
	n             *Node
	batchEntries  prometheus.Histogram
	commitSeconds prometheus.Histogram
	restores      prometheus.Counter

	state, term, lastIndex, commitIndex, applied, members, leader *prometheus.Desc
}

func newMetrics(n *Node) *metrics {
	return &metrics{
		n: n,
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "evidence_raft_batch_proposals",
			Help: "Appends (ledger proposals) per raft entry proposed by this node as leader.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "evidence_raft_commit_seconds",
			Help: "Time from proposing a raft entry to its appends being durable on the leader.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		restores:    prometheus.NewCounter(prometheus.CounterOpts{Name: "evidence_raft_snapshot_restores_total", Help: "Snapshots installed on this node."}),
		state:       prometheus.NewDesc("evidence_raft_state", "Raft state of this node: 0 follower, 1 candidate, 2 leader, 3 shutdown.", nil, nil),
		term:        prometheus.NewDesc("evidence_raft_term", "Current raft term.", nil, nil),
		lastIndex:   prometheus.NewDesc("evidence_raft_last_index", "Last index in this node's raft log.", nil, nil),
		commitIndex: prometheus.NewDesc("evidence_raft_commit_index", "Highest raft index known committed.", nil, nil),
		applied:     prometheus.NewDesc("evidence_raft_applied_index", "Raft index applied to this node's ledger (its store syncs in groups).", nil, nil),
		members:     prometheus.NewDesc("evidence_raft_members", "Members in the raft configuration.", nil, nil),
		leader:      prometheus.NewDesc("evidence_raft_has_leader", "1 when this node knows a leader.", nil, nil),
	}
}

// Collectors returns the node's metrics for a Prometheus registry.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{n.metrics.batchEntries, n.metrics.commitSeconds, n.metrics.restores, n.metrics}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.state, m.term, m.lastIndex, m.commitIndex, m.applied, m.members, m.leader} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	r := m.n.raft
	if r == nil {
		return
	}
	st := m.n.Status()
	var state float64
	switch r.State() {
	case raft.Candidate:
		state = 1
	case raft.Leader:
		state = 2
	case raft.Shutdown:
		state = 3
	}
	has := 0.0
	if st.Leader != "" {
		has = 1
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(m.state, state)
	g(m.term, float64(st.Term))
	g(m.lastIndex, float64(st.LastIndex))
	g(m.commitIndex, float64(st.CommitIndex))
	g(m.applied, float64(st.Applied))
	g(m.members, float64(len(st.Members)))
	g(m.leader, has)
}
