package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPprofAddr(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	if _, stop, err := servePprof("0.0.0.0:0", discard); err == nil {
		stop()
		t.Fatal("a profile endpoint on every interface was accepted")
	} else if !strings.Contains(err.Error(), "loopback") {
		t.Errorf("error %q does not say the address must be loopback", err)
	}

	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"pprof_addr":"127.0.0.1:0"}`), 0o600)
	c, err := loadConfig([]string{"--config", file}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.PprofAddr != "127.0.0.1:0" {
		t.Fatalf("pprof_addr from the config file: %q", c.PprofAddr)
	}
	if c, _ := loadConfig(nil, func(string) string { return "" }); c.PprofAddr != "" {
		t.Fatalf("profiles served by default on %q", c.PprofAddr)
	}

	addr, stop, err := servePprof("127.0.0.1:0", discard)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), os.Args[0]) {
		t.Errorf("cmdline: %s %q", resp.Status, body)
	}
}
