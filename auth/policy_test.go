package auth

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestDeclarationsAreWellFormed checks the table itself: every rule has a
// scope and known roles, public rules have none, operator rules only
// operator roles, and every gateway route calls a declared method.
func TestDeclarationsAreWellFormed(t *testing.T) {
	check := func(name string, r Rule) {
		switch {
		case r.Scope < ScopePublic || r.Scope > ScopeOperator:
			t.Errorf("%s: scope %v", name, r.Scope)
		case r.Scope == ScopePublic && len(r.Roles) > 0:
			t.Errorf("%s: public with roles", name)
		case r.Scope != ScopePublic && len(r.Roles) == 0:
			t.Errorf("%s: no role may call it", name)
		case r.Timeout < 0 || r.Deadline() > 2*time.Hour:
			t.Errorf("%s: timeout %v", name, r.Timeout)
		}
		for _, role := range r.Roles {
			if !ValidRole(role) {
				t.Errorf("%s: role %q", name, role)
			}
			if r.Scope == ScopeOperator && role != RoleAuditor && role != RoleAdmin {
				t.Errorf("%s: operator scope for %s, which has no operator identities", name, role)
			}
		}
	}
	for _, m := range Methods() {
		r, _ := MethodRule(m)
		check(m, r)
	}
	for _, p := range Routes() {
		rt, _ := RouteDeclaration(p)
		if rt.Method != "" && (rt.Rule.Scope != 0 || rt.Rule.Roles != nil) {
			t.Errorf("%s: both a method and a rule", p)
		}
		r, ok := RouteRule(p)
		if !ok {
			t.Errorf("%s: calls the undeclared %s", p, rt.Method)
			continue
		}
		check(p, r)
		if rt.Cookie && r.Scope == ScopePublic {
			t.Errorf("%s: a cookie on a public route", p)
		}
	}
}

// TestRoleDuties pins the division of duties, so that a change to
// the table is a visible decision.
func TestRoleDuties(t *testing.T) {
	allowed := func(m, role string) bool {
		r, ok := MethodRule("/evidence.v1." + m)
		if !ok {
			t.Fatalf("%s undeclared", m)
		}
		return r.Authorize(Identity{Tenant: "t", Subject: "s", Role: role}) == nil
	}
	duties := map[string][]string{
		RolePipeline:  {"EncounterService/CreateEncounter", "EncounterService/RecordAudio", "EncounterService/RecordSegments", "EncounterService/RecordModelOutput", "InferenceService/GenerateNote"},
		RoleClinician: {"EncounterService/GetNote", "EncounterService/GetTranscript", "EncounterService/RecordEdit", "EncounterService/SignNote", "SearchService/Search"},
		RoleAuditor:   {"EncounterService/GetNote", "ComplianceService/ExportProvenance", "ComplianceService/ListAccessEvents", "LedgerService/StreamEntries", "LedgerService/GetEntry"},
		RoleAdmin:     {"ComplianceService/ShredEncounter"},
	}
	for role, ms := range duties {
		for _, m := range ms {
			if !allowed(m, role) {
				t.Errorf("%s may not %s", role, m)
			}
		}
	}
	forbidden := map[string][]string{
		RolePipeline:  {"EncounterService/GetNote", "EncounterService/GetTranscript", "EncounterService/RecordEdit", "EncounterService/SignNote", "SearchService/Search", "ComplianceService/ShredEncounter"},
		RoleClinician: {"EncounterService/RecordSegments", "EncounterService/RecordModelOutput", "ComplianceService/ShredEncounter", "ComplianceService/ListAccessEvents"},
		RoleAuditor:   {"EncounterService/RecordEdit", "EncounterService/SignNote", "EncounterService/RecordSegments", "ComplianceService/ShredEncounter"},
		RoleAdmin:     {"EncounterService/GetNote", "EncounterService/GetTranscript", "SearchService/Search", "EncounterService/RecordEdit"},
	}
	for role, ms := range forbidden {
		for _, m := range ms {
			if allowed(m, role) {
				t.Errorf("%s may %s", role, m)
			}
		}
	}
}

func TestAuthorizeScopes(t *testing.T) {
	op := Identity{Tenant: OperatorTenant, Subject: "ops", Role: RoleAuditor}
	tn := Identity{Tenant: "t", Subject: "s", Role: RoleAuditor}
	roles := []string{RoleAuditor}
	for _, c := range []struct {
		scope  Scope
		id     Identity
		denied bool
	}{
		{ScopeTenant, tn, false}, {ScopeTenant, op, true},
		{ScopeLog, tn, false}, {ScopeLog, op, false},
		{ScopeLeaves, tn, false}, {ScopeLeaves, op, false},
		{ScopeOperator, tn, true}, {ScopeOperator, op, false},
		{Scope(0), tn, true}, {Scope(99), op, true},
	} {
		err := Rule{Scope: c.scope, Roles: roles}.Authorize(c.id)
		if (err != nil) != c.denied || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("%v %+v: %v", c.scope, c.id, err)
		}
	}
	if err := (Rule{Scope: ScopeLog, Roles: roles}).Authorize(Identity{Tenant: "t", Subject: "s", Role: RoleClinician}); !errors.Is(err, ErrForbidden) {
		t.Error("a role outside the rule was allowed")
	}
	if !slices.IsSorted(Methods()) || !slices.IsSorted(Routes()) {
		t.Error("unsorted")
	}
}
