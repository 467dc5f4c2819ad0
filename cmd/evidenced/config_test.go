package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"data_dir":"/from/file","storage":"badger","origin":"file.example/log","grpc_addr":"127.0.0.1:1"}`), 0o600)
	env := map[string]string{"EVIDENCE_ORIGIN": "env.example/log", "EVIDENCE_GRPC_ADDR": "127.0.0.1:2"}
	c, err := loadConfig([]string{"--config", file, "--grpc-addr", "127.0.0.1:3"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.DataDir, want.Storage, want.Origin, want.GRPCAddr = "/from/file", "badger", "env.example/log", "127.0.0.1:3"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("config %+v, want %+v", c, want)
	}
	bad := map[string][]string{
		"unknown storage": {"--storage", "sqlite"},
		"extra argument":  {"serve"},
		"unknown flag":    {"--nope"},
	}
	for name, args := range bad {
		if _, err := loadConfig(args, func(string) string { return "" }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	os.WriteFile(file, []byte(`{"data_dir":"x","colour":"blue"}`), 0o600)
	if _, err := loadConfig([]string{"--config", file}, func(string) string { return "" }); err == nil {
		t.Error("config file with an unknown key accepted")
	}
}
