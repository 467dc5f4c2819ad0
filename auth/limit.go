package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key (a caller, or a client address): each
// key may make Rate requests a second on average, in bursts of up to
// Burst. Keys idle for ten minutes are forgotten, and the number of keys
// is bounded, so that a flood of new keys cannot exhaust memory. It is
// safe for concurrent use.
type Limiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu struct {
		sync.Mutex
		buckets map[string]*bucket
		swept   time.Time
	}
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// MaxLimiterKeys bounds the keys a Limiter tracks at once.
const MaxLimiterKeys = 100_000

// NewLimiter returns a Limiter; perSecond <= 0 means no limit.
func NewLimiter(perSecond float64, burst int) *Limiter {
	l := &Limiter{rate: rate.Limit(perSecond), burst: max(burst, 1), max: MaxLimiterKeys}
	if perSecond <= 0 {
		l.rate = rate.Inf
	}
	l.mu.buckets = map[string]*bucket{}
	return l
}

// Allow reports whether key may make a request now, and takes a token
// if so. A nil Limiter allows everything.
func (l *Limiter) Allow(key string) bool {
	if l == nil || l.rate == rate.Inf {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.mu.buckets[key]
	if !ok {
		if len(l.mu.buckets) >= l.max {
			l.sweepLocked(now, true)
		}
		if len(l.mu.buckets) >= l.max {
			return false // every tracked key is active: refuse newcomers
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.mu.buckets[key] = b
	}
	b.used = now
	if now.Sub(l.mu.swept) > time.Minute {
		l.sweepLocked(now, false)
	}
	return b.lim.AllowN(now, 1)
}

// sweepLocked forgets keys idle for ten minutes (any idle key, when
// full). A forgotten key starts again with a full bucket, which it would
// have refilled to by then anyway. l.mu must be held.
func (l *Limiter) sweepLocked(now time.Time, full bool) {
	l.mu.swept = now
	idle := 10 * time.Minute
	if full {
		idle = time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Second
	}
	for k, b := range l.mu.buckets {
		if now.Sub(b.used) > idle {
			delete(l.mu.buckets, k)
		}
	}
}

// Policy is the runtime side of the declarations: the limits that the
// gRPC interceptors and the HTTP middleware apply with the rules.
type Policy struct {
	// Callers limits each authenticated identity (all its requests, over
	// gRPC and HTTP alike).
	Callers *Limiter
	// Failures limits failed authentications per client address; beyond
	// it a client gets ResourceExhausted (429) instead of Unauthenticated
	// until it slows down, which bounds online guessing and the cost of
	// verifying garbage tokens.
	Failures *Limiter
}

// AllowCaller applies the per-caller limit to id.
func (p *Policy) AllowCaller(id Identity) bool {
	if p == nil {
		return true
	}
	return p.Callers.Allow(id.Tenant + "\x00" + id.Role + "\x00" + id.Subject)
}

// AllowFailure records a failed authentication from addr (a host, no
// port) and reports whether the client is still under its limit.
func (p *Policy) AllowFailure(addr string) bool {
	if p == nil {
		return true
	}
	return p.Failures.Allow(addr)
}
