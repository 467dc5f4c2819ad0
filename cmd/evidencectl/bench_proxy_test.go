package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

func TestBenchProxy(t *testing.T) {
	var out bytes.Buffer
	g := &globals{stdout: &out, json: true}
	c := benchProxyCmd(g)
	c.SetArgs([]string{"--storage", "memory", "--requests", "100", "--clients", "4", "--rounds", "2", "--note"})
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Protocol string `json:"protocol"`
		Recorded int    `json:"recorded"`
		Errors   int    `json:"errors"`
	}
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("%s: %v", out.String(), err)
	}
	for _, r := range rows {
		if r.Recorded != 100 || r.Errors != 0 {
			t.Errorf("%+v", r)
		}
	}
}
