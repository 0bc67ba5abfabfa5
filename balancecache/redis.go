package balancecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Timeout is the dial, read, write and pool timeout OpenRedis uses unless the URL sets its own. The
// cache is consulted precisely when something is failing, so it must give up quickly rather than add
// its own outage to the request.
const Timeout = 200 * time.Millisecond

// DefaultPrefix is the key prefix NewRedis uses when given none.
const DefaultPrefix = "tally:balance:"

// Redis is a Cache in Redis, shared by every replica pointed at the same server and prefix. Each entry
// is a hash {version, entry} under prefix+customerHash with a TTL.
type Redis struct {
	client *redis.Client
	prefix string
	ttl    time.Duration
}

var _ Cache = (*Redis)(nil)

// putScript stores the entry unless the key holds a higher version, and (re)sets the TTL, in one step
// so that concurrent writers from any replica cannot interleave between the check and the write.
// Versions compare as Lua numbers, exact up to 2^53, far beyond any balance version.
var putScript = redis.NewScript(`
local stored = redis.call('HGET', KEYS[1], 'version')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
	return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'entry', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// NewRedis returns a Cache storing entries in client under prefix (DefaultPrefix when empty) for ttl
// (DefaultTTL when ttl <= 0).
func NewRedis(client *redis.Client, prefix string, ttl time.Duration) *Redis {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Redis{client: client, prefix: prefix, ttl: ttl}
}

// OpenRedis connects to the Redis server at url (redis://[user:password@]host:port/db, or rediss://
// for TLS) with short timeouts and no retries, and pings it so that a wrong address or password shows
// at start. Timeouts and max_retries given in the URL's query take precedence.
func OpenRedis(ctx context.Context, url string) (*redis.Client, error) {
	opt, err := redisOptions(url)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(opt)
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("balancecache: ping redis at %s: %w", opt.Addr, err)
	}
	return client, nil
}

// redisOptions parses url and fills in fail-fast defaults for whatever it leaves unset.
func redisOptions(url string) (*redis.Options, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("balancecache: redis url: %w", err)
	}
	for _, d := range []*time.Duration{&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout} {
		if *d == 0 {
			*d = Timeout
		}
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = -1 // a retry would double the time a failing cache costs
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = 1 // the default 5 attempts, 100 ms apart, would hang a request on a dead server
	}
	opt.ContextTimeoutEnabled = true // honour the request's own deadline too
	opt.DisableIdentity = true       // skip CLIENT SETINFO: one round trip less per new connection
	if opt.MaintNotificationsConfig == nil {
		opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	}
	return opt, nil
}

// Get implements Cache.
func (r *Redis) Get(ctx context.Context, customerHash string) (Entry, bool, error) {
	data, err := r.client.HGet(ctx, r.key(customerHash), "entry").Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("balancecache: get: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, false, fmt.Errorf("balancecache: get: decode entry: %w", err)
	}
	return e, true, nil
}

// Put implements Cache.
func (r *Redis) Put(ctx context.Context, e Entry) error {
	if e.CustomerHash == "" {
		return errNoCustomer
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("balancecache: put: %w", err)
	}
	ttl := max(r.ttl.Milliseconds(), 1)
	if err := putScript.Run(ctx, r.client, []string{r.key(e.CustomerHash)}, e.BalanceVersion, data, ttl).Err(); err != nil {
		return fmt.Errorf("balancecache: put: %w", err)
	}
	return nil
}

func (r *Redis) key(customerHash string) string { return r.prefix + customerHash }

// Delete implements Cache.
func (r *Redis) Delete(ctx context.Context, customerHash string) error {
	if err := r.client.Del(ctx, r.key(customerHash)).Err(); err != nil {
		return fmt.Errorf("balancecache: delete: %w", err)
	}
	return nil
}
