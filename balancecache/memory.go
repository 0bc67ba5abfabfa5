package balancecache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// DefaultMaxEntries bounds a Memory cache created with no bound.
const DefaultMaxEntries = 100_000

// Memory is a Cache held in process: bounded, evicting the least recently used entry when full. It is
// safe for concurrent use. Each replica has its own, so it suits a single instance or tests.
type Memory struct {
	max int
	ttl time.Duration
	now func() time.Time // replaced in tests

	mu    sync.Mutex
	items map[string]*list.Element // of *memoryItem
	lru   *list.List               // front: most recently used
}

type memoryItem struct {
	entry   Entry
	expires time.Time
}

var _ Cache = (*Memory)(nil)

// NewMemory returns an empty Memory holding at most maxEntries entries (DefaultMaxEntries when
// maxEntries <= 0) for ttl each (DefaultTTL when ttl <= 0).
func NewMemory(maxEntries int, ttl time.Duration) *Memory {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Memory{
		max:   maxEntries,
		ttl:   ttl,
		now:   time.Now,
		items: make(map[string]*list.Element),
		lru:   list.New(),
	}
}

// Get implements Cache. It never fails.
func (m *Memory) Get(_ context.Context, customerHash string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[customerHash]
	if !ok {
		return Entry{}, false, nil
	}
	it := el.Value.(*memoryItem)
	if !m.now().Before(it.expires) {
		m.remove(el)
		return Entry{}, false, nil
	}
	m.lru.MoveToFront(el)
	return it.entry, true, nil
}

// Put implements Cache. It fails only for an entry without a customer hash.
func (m *Memory) Put(_ context.Context, e Entry) error {
	if e.CustomerHash == "" {
		return errNoCustomer
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if el, ok := m.items[e.CustomerHash]; ok {
		it := el.Value.(*memoryItem)
		if now.Before(it.expires) && it.entry.BalanceVersion > e.BalanceVersion {
			return nil
		}
		it.entry, it.expires = e, now.Add(m.ttl)
		m.lru.MoveToFront(el)
		return nil
	}
	m.items[e.CustomerHash] = m.lru.PushFront(&memoryItem{entry: e, expires: now.Add(m.ttl)})
	for m.lru.Len() > m.max {
		m.remove(m.lru.Back())
	}
	return nil
}

// Len returns how many entries the cache holds, expired ones included until they are touched or evicted.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

func (m *Memory) remove(el *list.Element) {
	m.lru.Remove(el)
	delete(m.items, el.Value.(*memoryItem).entry.CustomerHash)
}

// Delete implements Cache.
func (m *Memory) Delete(_ context.Context, customerHash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[customerHash]; ok {
		m.remove(el)
	}
	return nil
}
