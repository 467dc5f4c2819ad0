package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// logCollector exports the log's size as Prometheus metrics.
type logCollector struct {
	log  *ledger.Log
	size *prometheus.Desc
}

func newLogCollector(l *ledger.Log) *logCollector {
	return &logCollector{log: l, size: prometheus.NewDesc("evidence_log_tree_size", "Entries covered by the latest signed checkpoint.", nil, nil)}
}

func (c *logCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.size }

func (c *logCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(c.log.Size()))
}

// readCollector exports how reads are served: the encounter state cache's
// hits, misses, evictions and size, and the log entries the encounter
// summaries reflect.
type readCollector struct {
	svc                                   *encounter.Service
	sums                                  *summaries
	hits, misses, evictions, bytes, limit *prometheus.Desc
	states, applied                       *prometheus.Desc
}

func newReadCollector(svc *encounter.Service, sums *summaries) *readCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &readCollector{svc: svc, sums: sums,
		hits:      d("evidence_encounter_state_cache_hits_total", "Reads of a visit whose decoded chain was in memory."),
		misses:    d("evidence_encounter_state_cache_misses_total", "Reads of a visit that decoded its chain from the log."),
		evictions: d("evidence_encounter_state_cache_evictions_total", "Decoded visits dropped to stay within the cache's memory budget."),
		bytes:     d("evidence_encounter_state_cache_bytes", "Estimated memory of the decoded visits in the cache."),
		limit:     d("evidence_encounter_state_cache_max_bytes", "The cache's memory budget (--state-cache-mb)."),
		states:    d("evidence_encounter_state_cache_states", "Decoded visits in the cache."),
		applied:   d("evidence_summaries_applied_entries", "Log entries the encounter summaries (the visit list) reflect."),
	}
}

func (c *readCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.evictions, c.bytes, c.limit, c.states, c.applied} {
		ch <- d
	}
}

func (c *readCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.svc.CacheStats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(st.MaxBytes))
	ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, float64(st.States))
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(c.sums.Applied()))
}
