package ratelimit

import (
	"context"
	"crypto/rand"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Failures shared by every replica on the same Redis server and prefix: failures seen by
// any replica count toward one limit, and a lockout holds on all of them. Each key is a sorted set of
// failure times (prefix+"f:"+key) and, while locked, a lock key (prefix+"l:"+key) with a TTL.
//
// When Redis fails, the limiter counts in memory instead (each replica on its own) until it answers
// again: a lockout must not depend on the cache being up, and an outage of the cache must not lock
// everyone out.
type Redis struct {
	client   *redis.Client
	prefix   string
	cfg      FailureConfig
	fallback *Memory
	log      *slog.Logger
	down     atomic.Bool // Redis failed and the failure was logged
}

var _ Failures = (*Redis)(nil)

// DefaultPrefix is the key prefix of NewRedis when given none.
const DefaultPrefix = "tally:authfail:"

// NewRedis returns a limiter storing its counters in client under prefix (DefaultPrefix when empty).
func NewRedis(client *redis.Client, prefix string, cfg FailureConfig, log *slog.Logger) *Redis {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	return &Redis{client: client, prefix: prefix, cfg: cfg, fallback: NewMemory(cfg), log: log}
}

// failScript records a failure at the server's time (replicas' clocks may differ) and starts a lockout
// when the window holds the limit, in one step so that replicas failing at once cannot both miss it.
// It returns the lockout started in milliseconds, 0 when none.
var failScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then
	return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit, lockout = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('ZCARD', KEYS[1]) < limit then
	return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', lockout)
return lockout
`)

// Locked implements Failures.
func (r *Redis) Locked(ctx context.Context, key string) time.Duration {
	ttl, err := r.client.PTTL(ctx, r.prefix+"l:"+key).Result()
	if err != nil {
		r.failed(err)
		return r.fallback.Locked(ctx, key)
	}
	r.up()
	if ttl > 0 {
		return max(ttl, r.fallback.Locked(ctx, key))
	}
	return r.fallback.Locked(ctx, key)
}

// Fail implements Failures.
func (r *Redis) Fail(ctx context.Context, key string) time.Duration {
	ms, err := failScript.Run(ctx, r.client, []string{r.prefix + "f:" + key, r.prefix + "l:" + key},
		r.cfg.Window.Milliseconds(), r.cfg.Limit, r.cfg.Lockout.Milliseconds(), rand.Text()).Int64()
	if err != nil {
		r.failed(err)
		return r.fallback.Fail(ctx, key)
	}
	r.up()
	return time.Duration(ms) * time.Millisecond
}

func (r *Redis) failed(err error) {
	if !r.down.Swap(true) {
		r.log.Warn("auth failure limiter: Redis failed, counting in memory until it answers", "err", err)
	}
}

func (r *Redis) up() {
	if r.down.Swap(false) {
		r.log.Info("auth failure limiter: Redis answers again")
	}
}
