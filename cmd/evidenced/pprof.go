package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's runtime profiles (net/http/pprof) on addr, a
// loopback address only: the endpoints carry no authentication. It is for
// measurements ("go tool pprof http://ADDR/debug/pprof/profile?seconds=10");
// it returns the address it listens on and a function that stops it.
func servePprof(addr string, logger *slog.Logger) (string, func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	if !isLoopback(lis.Addr()) {
		lis.Close()
		return "", nil, fmt.Errorf("--pprof-addr must be a loopback address, not %s: the profiles are served without authentication", addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)
	logger.Info("serving profiles", "pprof_addr", lis.Addr().String())
	return lis.Addr().String(), func() { srv.Close() }, nil
}
