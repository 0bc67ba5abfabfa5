package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Defaults of JetStreamOptions.
const (
	DefaultStream   = "TALLY_SPOOL"
	DefaultConsumer = "tally-replay"
)

// JetStreamOptions tune a JetStream spool.
type JetStreamOptions struct {
	Stream   string // the stream's name (default DefaultStream); its subject is the name, lower-cased, dotted
	Consumer string // the durable consumer every replica shares (default DefaultConsumer)
	MaxBytes int64  // the stream's size limit; Append answers ErrFull beyond it (default DefaultMaxBytes)
	MaxMsgs  int64  // the stream's message limit (default none)
	Workers  int    // how many goroutines a Replay applies entries with (default 1)
}

// JetStream is a Spool in a NATS JetStream work-queue stream with file storage. Replicas of Tally share
// it through one durable pull consumer, so a spool outlives the replica that wrote it. An entry is
// acknowledged (double ack: the server confirms it) only after apply succeeded, and the work-queue policy
// then removes it; a failed one is nak'ed for redelivery.
//
// One replica replays at a time: Replay first takes a lease, a key in a key-value bucket beside the
// stream (STREAM_REPLAY) that expires unless renewed, and renews it after each batch. Two replicas
// fetching at once would each hold entries of one customer and could apply them out of order.
type JetStream struct {
	nc      *nats.Conn
	stream  jetstream.Stream
	cons    jetstream.Consumer
	js      jetstream.JetStream
	lease   jetstream.KeyValue
	subject string
	opts    JetStreamOptions
	id      string // this spool's name in the lease

	leaseMu  sync.Mutex
	leaseRev uint64 // the revision of the lease this spool holds; 0 when it holds none
}

// The replay lease: held for leaseTTL unless renewed. Entries are fetched with an ack wait shorter than
// it, so that when a replica dies mid-batch its entries are redelivered before another can take the
// lease and fetch later entries of the same customers.
const (
	leaseKey     = "replayer"
	leaseTTL     = 45 * time.Second
	replayAckTTL = 30 * time.Second
)

var _ Spool = (*JetStream)(nil)

// OpenJetStream connects to the NATS server at url and creates or updates the stream and its consumer.
func OpenJetStream(ctx context.Context, url string, opts JetStreamOptions) (*JetStream, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Consumer == "" {
		opts.Consumer = DefaultConsumer
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxMsgs <= 0 {
		opts.MaxMsgs = -1
	}
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	nc, err := nats.Connect(url, nats.Name("tally spool"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("spool: connecting to NATS: %w", err)
	}
	s := &JetStream{nc: nc, opts: opts, subject: strings.ToLower(strings.ReplaceAll(opts.Stream, "_", ".")), id: nuid.Next()}
	if err := s.setup(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

func (s *JetStream) setup(ctx context.Context) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.opts.Stream,
		Description: "Tally: accruals kept while the ledger's database is unavailable",
		Subjects:    []string{s.subject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew, // full: refuse the new entry, never drop a kept one
		MaxBytes:    s.opts.MaxBytes,
		MaxMsgs:     s.opts.MaxMsgs,
	})
	if err != nil {
		return fmt.Errorf("spool: creating the stream %s (is JetStream enabled: nats-server -js?): %w", s.opts.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:   s.opts.Consumer,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   time.Minute,
		// At most one batch out at a time, acknowledged only once the whole batch was applied: a replica
		// fetches only after every entry another replica holds is applied or handed back, so that replicas
		// draining one stream keep each customer's entries in order.
		MaxAckPending: replayBatch,
	})
	if err != nil {
		return fmt.Errorf("spool: creating the consumer %s: %w", s.opts.Consumer, err)
	}
	lease, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.opts.Stream + "_REPLAY",
		Description: "Tally: which replica replays the spool",
		History:     1,
		TTL:         leaseTTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("spool: creating the replay lease bucket: %w", err)
	}
	s.js, s.stream, s.cons, s.lease = js, stream, cons, lease
	return nil
}

// takeLease takes or renews the replay lease; false when another replica holds it.
func (s *JetStream) takeLease(ctx context.Context) (bool, error) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.leaseRev != 0 {
		rev, err := s.lease.Update(ctx, leaseKey, []byte(s.id), s.leaseRev)
		if err == nil {
			s.leaseRev = rev
			return true, nil
		}
		s.leaseRev = 0 // expired and taken, or gone: take it anew below
	}
	rev, err := s.lease.Create(ctx, leaseKey, []byte(s.id))
	switch {
	case err == nil:
		s.leaseRev = rev
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("spool: taking the replay lease: %w", err)
}

// dropLease gives the lease up, if this spool still holds it, so another replica need not wait for it
// to expire.
func (s *JetStream) dropLease(ctx context.Context) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.leaseRev != 0 {
		_ = s.lease.Delete(ctx, leaseKey, jetstream.LastRevision(s.leaseRev))
		s.leaseRev = 0
	}
}

// Append publishes e and returns once the server acknowledged it as stored.
func (s *JetStream) Append(ctx context.Context, e Entry) error {
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if s.nc.IsClosed() {
		return ErrClosed
	}
	if _, err := s.js.Publish(ctx, s.subject, payload); err != nil {
		if isFull(err) {
			return ErrFull
		}
		return fmt.Errorf("spool: publishing to JetStream: %w", err)
	}
	return nil
}

// isFull reports a publish refused by the stream's limits (discard-new).
func isFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		d := strings.ToLower(apiErr.Description)
		return strings.Contains(d, "maximum bytes") || strings.Contains(d, "maximum messages") ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
	}
	return errors.Is(err, jetstream.ErrMaxBytesExceeded)
}

// Replay fetches batches of entries and applies them; each applied entry is double-acked (removed), the
// others nak'ed for redelivery.
// Another replica holding the replay lease makes Replay return nil at once: that replica replays.
func (s *JetStream) Replay(ctx context.Context, apply func(Entry) error) error {
	defer s.dropLease(context.WithoutCancel(ctx))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if held, err := s.takeLease(ctx); err != nil || !held {
			return err
		}
		batch, err := s.cons.FetchNoWait(replayBatch)
		if err != nil {
			return fmt.Errorf("spool: fetching from JetStream: %w", err)
		}
		var msgs []jetstream.Msg
		var entries []Entry
		for m := range batch.Messages() {
			var e Entry
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				// Not an entry (nothing Tally wrote): it can never be applied.
				_ = m.TermWithReason("not a tally spool entry")
				continue
			}
			msgs, entries = append(msgs, m), append(entries, e)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			nakAll(msgs)
			return fmt.Errorf("spool: fetching from JetStream: %w", err)
		}
		if len(entries) == 0 {
			return nil
		}
		results := ApplyOrdered(entries, s.opts.Workers, apply)
		// The entries not applied are handed back before any slot is freed by an acknowledgement, so that
		// whoever fetches next gets them (redeliveries come first) before the later entries of their
		// customers.
		for i, m := range msgs {
			if results[i] != nil {
				_ = m.Nak()
			}
		}
		var ackErr error
		for i, m := range msgs {
			if results[i] == nil {
				if err := m.DoubleAck(ctx); err != nil && ackErr == nil {
					ackErr = fmt.Errorf("spool: acknowledging an applied entry: %w", err)
				}
			}
		}
		if err := firstError(results); err != nil {
			return err
		}
		if ackErr != nil {
			return ackErr
		}
	}
}

func nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// Stats reads the stream's state: in a work queue every stored message is one not yet acknowledged.
func (s *JetStream) Stats(ctx context.Context) (Stats, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("spool: %w", err)
	}
	st := Stats{Depth: int64(info.State.Msgs)}
	if st.Depth > 0 {
		st.Oldest = info.State.FirstTime
	}
	return st, nil
}

// Close drains nothing and closes the connection: unacknowledged entries are redelivered to the next
// consumer.
func (s *JetStream) Close() error {
	s.nc.Close()
	return nil
}

// DeleteStream removes the stream, everything in it, and its lease bucket (tests clean up with it).
func (s *JetStream) DeleteStream(ctx context.Context) error {
	_ = s.js.DeleteKeyValue(ctx, s.opts.Stream+"_REPLAY")
	return s.js.DeleteStream(ctx, s.opts.Stream)
}
