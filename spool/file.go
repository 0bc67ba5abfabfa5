package spool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A record on disk is a header of 8 bytes, the payload's length and its CRC-32C (Castagnoli), both
// big-endian uint32, followed by the payload: the entry as JSON.
const headerLen = 8

// maxRecord bounds one record's payload, so that a corrupt length cannot make Open allocate gigabytes.
const maxRecord = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DefaultMaxBytes is the size limit of a File opened with a zero FileOptions.MaxBytes.
const DefaultMaxBytes = 1 << 30

// replayBatch is how many entries one round of a replay reads and applies before it moves the cursor.
const replayBatch = 256

// FileOptions tune a File.
type FileOptions struct {
	MaxBytes int64 // the file's size limit; Append answers ErrFull beyond it (default DefaultMaxBytes)
	Workers  int   // how many goroutines a Replay applies entries with (default 1)
}

// File is a Spool in an append-only local file. Each record is framed with its length and CRC-32C;
// concurrent Appends share one fsync (group commit); how far replay got is kept in a sidecar file,
// PATH.cursor, replaced atomically. A torn or corrupt tail (a crash mid-write) is cut off by Open: such a
// record was never acknowledged, since Append returns only after its record's fsync. Once every entry is
// replayed the file is emptied.
type File struct {
	path string
	opts FileOptions

	mu     sync.Mutex // guards the fields below and the file's end
	f      *os.File
	end    int64     // the offset where the next record goes
	depth  int64     // records after the cursor
	oldest time.Time // Received of the record at the cursor
	broken error     // set once a write or fsync failed
	closed bool

	syncMu sync.Mutex // held by the one Append that fsyncs for everyone waiting
	synced int64      // records before this offset are durable; guarded by syncMu

	replayMu sync.Mutex // one Replay at a time
	cursor   int64      // offset of the first record not replayed; written under replayMu and mu
}

var _ Spool = (*File)(nil)

// OpenFile opens (creating, mode 0600) the spool file at path, cuts a torn tail, and reads the cursor.
func OpenFile(path string, opts FileOptions) (*File, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &File{path: path, opts: opts, f: f}
	// The directory entry of a file just created must be durable too.
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := s.recover(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// recover finds the end of the last whole record, cuts what follows, and counts the records after the
// cursor.
func (s *File) recover() error {
	cursor, err := readCursor(s.path + ".cursor")
	if err != nil {
		return err
	}
	var off, depth int64
	var oldest time.Time
	for {
		e, n, err := s.readRecord(off)
		if err != nil {
			break // io.EOF, a short record, or a corrupt one: the valid log ends here
		}
		if off >= cursor {
			if depth == 0 {
				oldest = e.Received
			}
			depth++
		}
		off += n
	}
	info, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if info.Size() > off {
		if err := s.f.Truncate(off); err != nil {
			return fmt.Errorf("spool: cutting a torn tail: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	if cursor > off {
		// The cursor points past the log: the file was emptied after a full replay but the crash came
		// before the cursor was reset (compact resets the cursor first, so this is only a cursor that
		// names a log now gone). Everything in the file is unreplayed.
		cursor = 0
		return s.recoverFrom(off)
	}
	s.end, s.synced, s.cursor, s.depth, s.oldest = off, off, cursor, depth, oldest
	return nil
}

// recoverFrom recounts the records of a log of length end from its start.
func (s *File) recoverFrom(end int64) error {
	var off, depth int64
	var oldest time.Time
	for off < end {
		e, n, err := s.readRecord(off)
		if err != nil {
			break
		}
		if depth == 0 {
			oldest = e.Received
		}
		depth++
		off += n
	}
	s.end, s.synced, s.cursor, s.depth, s.oldest = end, end, 0, depth, oldest
	return writeCursor(s.path+".cursor", 0)
}

// readRecord reads the record at off, returning it and its length on disk.
func (s *File) readRecord(off int64) (Entry, int64, error) {
	var h [headerLen]byte
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		return Entry{}, 0, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 || n > maxRecord {
		return Entry{}, 0, errors.New("spool: bad record length")
	}
	payload := make([]byte, n)
	if _, err := s.f.ReadAt(payload, off+headerLen); err != nil {
		return Entry{}, 0, err
	}
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return Entry{}, 0, errors.New("spool: checksum mismatch")
	}
	var e Entry
	if err := json.Unmarshal(payload, &e); err != nil {
		return Entry{}, 0, fmt.Errorf("spool: bad record: %w", err)
	}
	return e, headerLen + int64(n), nil
}

// Append writes e and returns once it is fsynced.
func (s *File) Append(ctx context.Context, e Entry) error {
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if len(payload) > maxRecord {
		return ErrFull
	}
	rec := make([]byte, headerLen+len(payload))
	binary.BigEndian.PutUint32(rec[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[4:8], crc32.Checksum(payload, castagnoli))
	copy(rec[headerLen:], payload)

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.broken != nil:
		s.mu.Unlock()
		return ErrBroken
	case s.end+int64(len(rec)) > s.opts.MaxBytes:
		s.mu.Unlock()
		return ErrFull
	}
	if _, err := s.f.WriteAt(rec, s.end); err != nil {
		// Part of the record may be on disk: the spool no longer knows where its log ends.
		s.broken = err
		s.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrBroken, err)
	}
	s.end += int64(len(rec))
	mine := s.end
	if s.depth == 0 {
		s.oldest = e.Received
	}
	s.depth++
	s.mu.Unlock()
	return s.sync(mine)
}

// sync returns once the log is durable up to offset upto. The first caller to take syncMu fsyncs
// everything written so far; the callers queued behind it find their records already durable.
func (s *File) sync(upto int64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= upto {
		return nil
	}
	s.mu.Lock()
	target, broken := s.end, s.broken
	s.mu.Unlock()
	if broken != nil {
		return ErrBroken
	}
	if err := s.f.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages: what was written since the
		// last good fsync cannot be trusted, and nothing written after it can be either.
		s.mu.Lock()
		s.broken = err
		s.mu.Unlock()
		return fmt.Errorf("%w: fsync: %v", ErrBroken, err)
	}
	s.synced = target
	return nil
}

// Replay applies the durable entries after the cursor, a batch at a time, moving the cursor past each
// batch's applied prefix; an emptied spool is compacted.
func (s *File) Replay(ctx context.Context, apply func(Entry) error) error {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		s.mu.Unlock()
		s.syncMu.Lock()
		durable := s.synced
		s.syncMu.Unlock()

		var entries []Entry
		var ends []int64
		for off := s.cursor; off < durable && len(entries) < replayBatch; {
			e, n, err := s.readRecord(off)
			if err != nil {
				return fmt.Errorf("spool: reading the record at %d: %w", off, err)
			}
			off += n
			entries, ends = append(entries, e), append(ends, off)
		}
		if len(entries) == 0 {
			return s.compact()
		}
		results := ApplyOrdered(entries, s.opts.Workers, apply)
		done := 0
		for done < len(results) && results[done] == nil {
			done++
		}
		if done > 0 {
			if err := s.advance(ends[done-1], done); err != nil {
				return err
			}
		}
		if done < len(results) {
			return firstError(results)
		}
	}
}

// advance moves the cursor to off, past n replayed records; the cursor file is written first, so that
// a crash can only make the replay repeat records, never skip one.
func (s *File) advance(off int64, n int) error {
	if err := writeCursor(s.path+".cursor", off); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursor = off
	s.depth -= int64(n)
	s.oldest = time.Time{}
	if s.depth > 0 {
		if e, _, err := s.readRecord(off); err == nil {
			s.oldest = e.Received
		}
	}
	return nil
}

// compact empties a fully replayed log. The cursor is reset first: a crash between the two steps leaves
// a cursor at 0 over records already replayed, which a later Replay applies again (apply is idempotent),
// never a cursor past records not yet replayed.
func (s *File) compact() error {
	// syncMu before mu, the order sync takes them in.
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cursor == 0 || s.cursor != s.end || s.broken != nil {
		return nil
	}
	if err := writeCursor(s.path+".cursor", 0); err != nil {
		return err
	}
	s.cursor = 0
	if err := s.f.Truncate(0); err != nil {
		s.broken = err
		return fmt.Errorf("%w: compacting: %v", ErrBroken, err)
	}
	if err := s.f.Sync(); err != nil {
		s.broken = err
		return fmt.Errorf("%w: compacting: %v", ErrBroken, err)
	}
	s.end, s.synced = 0, 0
	return nil
}

// Stats reports the records after the cursor.
func (s *File) Stats(context.Context) (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Stats{}, ErrClosed
	}
	st := Stats{Depth: s.depth}
	if s.depth > 0 {
		st.Oldest = s.oldest
	}
	return st, nil
}

// Close closes the file.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

// readCursor reads the cursor sidecar; a missing one is offset 0.
func readCursor(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("spool: the cursor file %s is corrupt: %q", path, b)
	}
	return off, nil
}

// writeCursor replaces the cursor sidecar atomically: a temporary file, fsynced, renamed over it, and
// the directory fsynced so the rename itself is durable.
func writeCursor(path string, off int64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = io.WriteString(f, strconv.FormatInt(off, 10)+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("spool: writing the cursor: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
