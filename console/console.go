package console

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/syncfanout/syncfanout/queue"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Defaults of Options.
const (
	DefaultPageSize        = 50
	DefaultPeekSize        = 10
	DefaultMaxPayloadBytes = 2048
	// MaxHistory bounds the events one history page shows.
	MaxHistory = 1000
)

// Options configure the console. The zero value is a read-only console.
type Options struct {
	// Admin turns on the admin actions (pause, resume, purge, release,
	// kick, delete). They are POSTs that must carry the page's CSRF token.
	// Off (the default), the console only reads and answers every admin
	// POST with 403 Forbidden.
	Admin bool
	// Actor names who performs an admin request; it is recorded with the
	// action in the room's stream. Set it from your own authentication.
	// Default: "console" and the client's address.
	Actor func(*http.Request) string
	// PageSize is the number of rooms per page of the rooms list (default
	// DefaultPageSize, at most queue.MaxTopRooms).
	PageSize int
	// PeekSize is the number of pending messages a room page shows
	// (default DefaultPeekSize, at most 1000).
	PeekSize int
	// MaxPayloadBytes is how much of a payload is shown before it is cut,
	// with its full size (default DefaultMaxPayloadBytes).
	MaxPayloadBytes int
	// Title is shown in the header and the window title (default
	// "syncfanout").
	Title string
}

func (o Options) withDefaults() Options {
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PeekSize == 0 {
		o.PeekSize = DefaultPeekSize
	}
	if o.MaxPayloadBytes == 0 {
		o.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if o.Title == "" {
		o.Title = "syncfanout"
	}
	if o.Actor == nil {
		o.Actor = func(r *http.Request) string { return "console " + r.RemoteAddr }
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.PageSize < 1 || o.PageSize > queue.MaxTopRooms:
		return fmt.Errorf("%w: console PageSize=%d, want 1..%d", queue.ErrInvalidOption, o.PageSize, queue.MaxTopRooms)
	case o.PeekSize < 1 || o.PeekSize > 1000:
		return fmt.Errorf("%w: console PeekSize=%d, want 1..1000", queue.ErrInvalidOption, o.PeekSize)
	case o.MaxPayloadBytes < 16 || o.MaxPayloadBytes > 1<<20:
		return fmt.Errorf("%w: console MaxPayloadBytes=%d, want 16..%d", queue.ErrInvalidOption, o.MaxPayloadBytes, 1<<20)
	}
	return nil
}

// Handler is the console; it implements http.Handler.
type Handler struct {
	q      *queue.Queue
	opts   Options
	mux    *http.ServeMux
	pages  map[string]*template.Template
	secret []byte // signs the CSRF tokens; new for every Handler
}

// New returns the console of q's deployment. Mount it under any path
// prefix with http.StripPrefix; every link it makes is relative:
//
//	mux.Handle("/console/", http.StripPrefix("/console", h))
//
// It adds no authentication: put your own in front of it.
func New(q *queue.Queue, opts Options) (*Handler, error) {
	if q == nil {
		return nil, fmt.Errorf("%w: console.New needs a Queue", queue.ErrInvalidOption)
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	h := &Handler{q: q, opts: opts, mux: http.NewServeMux(), secret: make([]byte, 32)}
	if _, err := rand.Read(h.secret); err != nil {
		return nil, fmt.Errorf("syncfanout: console secret: %w", err)
	}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /{$}", h.roomsPage)
	h.mux.HandleFunc("GET /room", h.roomPage)
	h.mux.HandleFunc("GET /history", h.historyPage)
	h.mux.HandleFunc("GET /stats", h.statsPage)
	h.mux.HandleFunc("GET /events", h.events)
	h.mux.HandleFunc("GET /api/rooms", h.apiRooms)
	h.mux.HandleFunc("GET /api/room", h.apiRoom)
	h.mux.HandleFunc("GET /api/history", h.apiHistory)
	h.mux.HandleFunc("GET /api/stats", h.apiStats)
	h.mux.HandleFunc("/api/admin/{action}", h.admin)
	return h, nil
}

// ServeHTTP serves the console.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Mounted with StripPrefix("/console"), a request for "/console"
	// arrives with an empty path: send it to "/console/" so that the
	// relative links resolve under the prefix.
	if r.URL.Path == "" {
		uri, _, _ := strings.Cut(r.RequestURI, "?")
		base := path.Base(uri)
		// Not http.Redirect: it would resolve the relative location
		// against the stripped (empty) path.
		w.Header().Set("Location", base+"/")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

// Options returns the options in effect, defaults filled in.
func (h *Handler) Options() Options { return h.opts }

// readTimeout bounds the Redis reads of one page or API call, so that a
// stuck Redis gives an error page instead of a hanging browser tab.
const readTimeout = 10 * time.Second

func readCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), readTimeout)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// apiError is the body of every JSON error.
type apiError struct {
	Error string `json:"error"`
}

// statusOf maps an error to the HTTP status that tells its cause.
func statusOf(err error) int {
	switch {
	case errors.Is(err, queue.ErrInvalidRoom), errors.Is(err, queue.ErrInvalidOption),
		errors.Is(err, queue.ErrInvalidClientID), errors.Is(err, queue.ErrInvalidPriority),
		errors.Is(err, queue.ErrInvalidActor), errors.Is(err, queue.ErrInvalidReason),
		errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, queue.ErrNotMember), errors.Is(err, queue.ErrUnknownRoom), errors.Is(err, errUnknownAction):
		return http.StatusNotFound
	case errors.Is(err, queue.ErrAlreadyPaused), errors.Is(err, queue.ErrNotPaused), errors.Is(err, queue.ErrNoInFlight):
		return http.StatusConflict
	}
	return http.StatusBadGateway // Redis failed us
}

func jsonError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), apiError{err.Error()})
}

// errBadRequest marks a query parameter the console cannot use.
var errBadRequest = errors.New("syncfanout console: bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}
