package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The headers a trusted proxy may name the client in (Options.ForwardedHeader).
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded" // RFC 7239; only its for= parameter is read
)

// ParseTrustedProxies parses a comma-separated list of CIDRs (10.0.0.0/8, fd00::/8) or single addresses,
// the proxies whose forwarding header Tally believes. An empty list trusts no proxy.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ParseForwardedHeader checks the name of the header the trusted proxies set (X-Forwarded-For when empty)
// and returns its canonical form.
func ParseForwardedHeader(s string) (string, error) {
	switch {
	case s == "" || strings.EqualFold(s, HeaderXForwardedFor):
		return HeaderXForwardedFor, nil
	case strings.EqualFold(s, HeaderForwarded):
		return HeaderForwarded, nil
	}
	return "", fmt.Errorf("%q is neither %s nor %s", s, HeaderXForwardedFor, HeaderForwarded)
}

// source is the request's client address in the form the abuse limits count by and the logs show: an
// IPv4 address, or an IPv6 address's /64 (one host gets a whole /64, so one address of it is no one's).
func (s *Server) source(r *http.Request) string {
	a, ok := clientAddress(r, s.opts.TrustedProxies, s.opts.ForwardedHeader)
	if !ok {
		// Not an IP peer (a test's recorder, a Unix socket): its own text, still one key per peer.
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// clientAddress is the address a request came from. It is the TCP peer, unless the peer is one of the
// trusted proxies: then it is the right-most address of the forwarding header that is not itself a
// trusted proxy (each proxy appends the address it was reached from, so every address right of the
// client's was written by a trusted proxy, and everything left of it is whatever the client sent). When
// every address is a trusted proxy it is the left-most (an internal caller).
//
// A header that is absent, or malformed where it was read, gives the peer: a broken header is no one's
// evidence, and the peer is a real address. A header from a peer that is not trusted is ignored whatever
// it says, since any client can send one. Only the configured header is read: a proxy that sets one of
// X-Forwarded-For and Forwarded passes the other on from the client untouched.
func clientAddress(r *http.Request, trusted []netip.Prefix, header string) (netip.Addr, bool) {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok || !isTrusted(peer, trusted) {
		return peer, ok
	}
	var hops []string
	if header == HeaderForwarded {
		hops = forwardedFor(r.Header.Values(HeaderForwarded))
	} else {
		hops = splitList(r.Header.Values(HeaderXForwardedFor))
	}
	if len(hops) == 0 {
		return peer, true
	}
	var a netip.Addr
	// Right to left, and parsed only as far as needed: what lies left of the client's address is the
	// client's to write, malformed or not.
	for i := len(hops) - 1; i >= 0; i-- {
		if a, ok = parseHop(hops[i]); !ok {
			return peer, true
		}
		if !isTrusted(a, trusted) {
			return a, true
		}
	}
	return a, true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// splitList splits the comma-separated values of a header's lines into one list, in order (RFC 9110
// section 5.3: several lines of a list header are one list).
func splitList(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, v := range strings.Split(l, ",") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// forwardedFor returns the for= value of each element of RFC 7239 Forwarded header lines, in order; an
// element without exactly one for= yields "" (malformed). Quoted strings are not scanned for commas or
// semicolons: the for= values Tally reads contain neither, and a client's quote left open must not hide
// the element a proxy appended after it.
func forwardedFor(lines []string) []string {
	var out []string
	for _, elem := range splitList(lines) {
		v, n := "", 0
		for _, pair := range strings.Split(elem, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(name, "for") {
				v, n = value, n+1
			}
		}
		if n != 1 {
			v = ""
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		out = append(out, v)
	}
	return out
}

// parseHop parses one address as forwarding headers and RemoteAddr write it: 192.0.2.1,
// 192.0.2.1:4711, 2001:db8::1, [2001:db8::1] or [2001:db8::1]:4711. An IPv4-mapped IPv6 address is
// its IPv4 address; an IPv6 zone is dropped (it names an interface, not a host).
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if ap, err2 := netip.ParseAddrPort(s); err2 == nil {
			a, err = ap.Addr(), nil
		} else if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
			a, err = netip.ParseAddr(s[1 : len(s)-1])
			if err == nil && !a.Is6() {
				err = fmt.Errorf("an IPv4 address in brackets")
			}
		}
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
