package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// config is the server's configuration. Each setting comes from, in order
// of precedence: a command-line flag, an EVIDENCE_* environment variable,
// the JSON config file named by --config, or the default.
type config struct {
	DataDir  string `json:"data_dir"`
	GRPCAddr string `json:"grpc_addr"`
	HTTPAddr string `json:"http_addr"`
	Storage  string `json:"storage"`
	Origin   string `json:"origin"`
	Demo     bool   `json:"demo"`
	Search   bool   `json:"search"`
	LogLevel string `json:"log_level"`
	// StateCacheMB bounds the decoded visits kept in memory.
	StateCacheMB int `json:"state_cache_mb"`
	// PprofAddr, when set, serves Go's runtime profiles on this loopback
	// address (for measurements).
	PprofAddr string `json:"pprof_addr"`

	Inference inferenceConfig `json:"inference"`
	Security  securityConfig  `json:"security"`
	Cluster   clusterConfig   `json:"cluster"`
	Witness   witnessConfig   `json:"witness"`
}

func defaults() config {
	return config{
		DataDir:      "data",
		GRPCAddr:     "127.0.0.1:7070",
		HTTPAddr:     "127.0.0.1:8080",
		Storage:      "pebble",
		Search:       true,
		Origin:       "evidence.localhost/log",
		LogLevel:     "info",
		StateCacheMB: 256,
		Inference:    defaultInference(),
		Security:     defaultSecurity(),
		Witness:      witnessConfig{Interval: time.Second},
	}
}

// loadConfig parses args and the environment into a config.
func loadConfig(args []string, getenv func(string) string) (config, error) {
	c := defaults()
	fs := flag.NewFlagSet("evidenced", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: evidenced [flags]\n\nEvery flag can also be set as EVIDENCE_<NAME> (e.g. EVIDENCE_DATA_DIR) or in the --config JSON file.\n\n")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", getenv("EVIDENCE_CONFIG"), "optional JSON config file")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the log, its signing key and blobs")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address (web page, audio, tlog tiles, metrics)")
	fs.StringVar(&c.Storage, "storage", c.Storage, "storage engine: pebble or badger")
	fs.StringVar(&c.Origin, "origin", c.Origin, "log origin, named in every checkpoint")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "load the demo encounter once")
	fs.BoolVar(&c.Search, "search", c.Search, "maintain the full-text search index (a view of the log) and serve SearchService")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.IntVar(&c.StateCacheMB, "state-cache-mb", c.StateCacheMB, "memory for decoded visits kept between reads, in MiB (estimated)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "serve Go's runtime profiles (/debug/pprof/) on this loopback address, without authentication; unset: not served")
	addInferenceFlags(fs, &c.Inference)
	addSecurityFlags(fs, &c.Security)
	addClusterFlags(fs, &c.Cluster)
	addWitnessFlags(fs, &c.Witness)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The config file fills what no flag set; then the environment
	// overrides the file.
	fromFile := c
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return c, err
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fromFile); err != nil {
			return c, fmt.Errorf("config file %s: %w", *configPath, err)
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		env := "EVIDENCE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			return
		}
		applyFromFile(&c, &fromFile, f.Name)
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := c.Inference.validate(); err != nil {
		return c, err
	}
	if err := c.Security.validate(); err != nil {
		return c, err
	}
	if err := c.Cluster.validate(); err != nil {
		return c, err
	}
	if c.StateCacheMB < 1 {
		return c, fmt.Errorf("--state-cache-mb must be at least 1, not %d", c.StateCacheMB)
	}
	if c.Storage != "pebble" && c.Storage != "badger" {
		return c, fmt.Errorf("--storage must be pebble or badger, not %q", c.Storage)
	}
	return c, nil
}

func applyFromFile(c, file *config, name string) {
	switch name {
	case "data-dir":
		c.DataDir = file.DataDir
	case "grpc-addr":
		c.GRPCAddr = file.GRPCAddr
	case "http-addr":
		c.HTTPAddr = file.HTTPAddr
	case "storage":
		c.Storage = file.Storage
	case "origin":
		c.Origin = file.Origin
	case "demo":
		c.Demo = file.Demo
	case "search":
		c.Search = file.Search
	case "log-level":
		c.LogLevel = file.LogLevel
	case "state-cache-mb":
		c.StateCacheMB = file.StateCacheMB
	case "pprof-addr":
		c.PprofAddr = file.PprofAddr
	default:
		if !applyInferenceFromFile(&c.Inference, &file.Inference, name) && !applySecurityFromFile(&c.Security, &file.Security, name) &&
			!applyClusterFromFile(&c.Cluster, &file.Cluster, name) {
			switch name {
			case "witness":
				c.Witness.Witnesses = file.Witness.Witnesses
			case "witness-quorum":
				c.Witness.Quorum = file.Witness.Quorum
			case "witness-interval":
				c.Witness.Interval = file.Witness.Interval
			}
		}
	}
}
