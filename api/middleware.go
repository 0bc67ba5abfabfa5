package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyLogger
	keyPrincipal
)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

func logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(keyLogger).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// newRequestID keeps a caller's X-Request-Id when it is a sane token (Genesys sends a correlation id),
// else makes one.
func newRequestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && isToken(id) {
		return id
	}
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func isToken(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe is the outermost layer: request id, structured log, metrics, and panic recovery (a 500 that
// carries the request id, so the log line can be found).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID(r)
		log := s.log.With("request_id", id)
		ctx := context.WithValue(context.WithValue(r.Context(), keyRequestID, id), keyLogger, log)
		r = r.WithContext(ctx)
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, r, &tally.Error{Code: tally.EINTERNAL, Message: "internal error"})
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			if s.metrics != nil {
				st := strconv.Itoa(status)
				s.metrics.Requests.WithLabelValues(route, st).Inc()
				s.metrics.RequestDuration.WithLabelValues(route, st).Observe(elapsed.Seconds())
			}
			if s.opts.LogRequests {
				log.Info("request", "method", r.Method, "route", route, "status", status, "duration_ms", float64(elapsed.Microseconds())/1000)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusClientClosed is recorded for a request whose caller went away before it was served (nginx's 499).
const statusClientClosed = 499

// admit bounds the requests that reach the store at once. A request that cannot get a slot within the
// admission wait is shed with 429 and Retry-After, so overload shows as fast refusals, not as timeouts.
//
// The body is read before a slot is taken. A slot is for using the store: a client that uploads slowly
// (for up to the server's read timeout) must not hold one while others are shed. And net/http watches
// the connection for a caller who hangs up only once the body has been read, so only then does a
// queued request notice that its caller is gone.
func (s *Server) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		readAhead(r, s.opts.BodyLimit)
		select {
		case s.slots <- struct{}{}:
		default:
			t := time.NewTimer(s.opts.AdmissionWait)
			select {
			case s.slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				if s.metrics != nil {
					s.metrics.Shed.Inc()
				}
				writeError(w, r, tally.Errorf(tally.EOVERLOADED, "the server is at capacity; retry shortly"))
				return
			case <-r.Context().Done():
				// The caller hung up while queued: nothing was done, and the metrics and request log must
				// not count it as a 200.
				t.Stop()
				w.WriteHeader(statusClientClosed)
				return
			}
		}
		defer func() { <-s.slots }()
		next.ServeHTTP(w, r)
	})
}

// readAhead reads up to limit+1 bytes of the request body into memory and puts them back in front of
// the rest, so that handlers, and their own body limits, see the same bytes and the same read error as
// they would have without it. Bodies within the limit are thereby read to the end.
func readAhead(r *http.Request, limit int64) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	rest := io.Reader(r.Body)
	if err != nil {
		rest = failingReader{err}
	}
	r.Body = readAheadBody{Reader: io.MultiReader(bytes.NewReader(head), rest), Closer: r.Body}
}

type readAheadBody struct {
	io.Reader
	io.Closer
}

// failingReader returns the error that ended the read-ahead, after the bytes read before it.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }
