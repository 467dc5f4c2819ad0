package auth

import (
	"fmt"
	"testing"
)

func TestLimiter(t *testing.T) {
	l := NewLimiter(1, 5)
	for i := range 5 {
		if !l.Allow("a") {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.Allow("a") {
		t.Fatal("beyond the burst allowed")
	}
	if !l.Allow("b") {
		t.Fatal("another key shares a's bucket")
	}
	var nl *Limiter
	if !nl.Allow("x") || !NewLimiter(0, 0).Allow("x") {
		t.Fatal("no limit refused")
	}
}

func TestLimiterIsBounded(t *testing.T) {
	l := NewLimiter(1, 1)
	l.max = 100
	for i := range 100 {
		l.Allow(fmt.Sprint(i))
	}
	// Every tracked key is recent: newcomers wait rather than grow the map.
	if l.Allow("new") {
		t.Fatal("a new key was tracked beyond the bound")
	}
	if n := len(l.mu.buckets); n > 100 {
		t.Fatalf("%d keys", n)
	}
}

func TestPolicyKeysCallers(t *testing.T) {
	p := &Policy{Callers: NewLimiter(1, 1)}
	a := Identity{Tenant: "t", Subject: "s", Role: RoleClinician}
	b := a
	b.Role = RoleAuditor
	if !p.AllowCaller(a) || p.AllowCaller(a) || !p.AllowCaller(b) {
		t.Fatal("callers are not limited apart")
	}
	var np *Policy
	if !np.AllowCaller(a) || !np.AllowFailure("1.2.3.4") {
		t.Fatal("nil policy limited")
	}
}
