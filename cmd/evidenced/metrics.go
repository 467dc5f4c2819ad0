package main

import (
	"github.com/prometheus/client_golang/prometheus"

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
