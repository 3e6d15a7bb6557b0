package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
)

// Admin requests are POSTs with the page's CSRF token in the
// X-CSRF-Token header (or a csrf form field). The token is an HMAC, under
// the Handler's own random secret, of a random value kept in a
// SameSite=Strict cookie: another site can neither read the token from
// the page nor make the browser send the cookie along with a forged POST,
// and a custom header cannot be set across origins without CORS consent.
const (
	csrfCookie = "syncfanout_console"
	csrfHeader = "X-CSRF-Token"
)

// csrfToken returns the token for this browser, setting its cookie when
// it has none yet. It is only used in admin mode.
func (h *Handler) csrfToken(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 32 {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		c = &http.Cookie{
			Name: csrfCookie, Value: base64.RawURLEncoding.EncodeToString(b),
			// No Path: the browser scopes the cookie to the directory of
			// the page that set it, which is the console's prefix.
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		}
		http.SetCookie(w, c)
	}
	return h.sign(c.Value)
}

func (h *Handler) sign(v string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte("csrf\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errCSRF = errors.New("syncfanout console: missing or wrong CSRF token (reload the page)")

func (h *Handler) checkCSRF(r *http.Request) error {
	// Browsers say where a request comes from; a cross-site POST is
	// refused whatever it carries.
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errCSRF
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil {
		return errCSRF
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if got == "" || !hmac.Equal([]byte(got), []byte(h.sign(c.Value))) {
		return errCSRF
	}
	return nil
}

// ActionResult is the answer to an admin POST.
type ActionResult struct {
	Action string `json:"action"`
	Room   string `json:"room"`
	// Purged: how many pending messages Purge dropped; Released: the
	// members a forced release did not wait for.
	Purged   *int     `json:"purged,omitempty"`
	Released []string `json:"released_without,omitempty"`
}

// admin serves POST api/admin/{action}: 405 for other methods, 403 in
// read-only mode or without the CSRF token, then the action.
func (h *Handler) admin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, apiError{"admin actions are POST requests"})
		return
	}
	if !h.opts.Admin {
		writeJSON(w, http.StatusForbidden, apiError{"read-only console: admin actions are off (console.Options.Admin, syncfanout console --admin)"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := h.checkCSRF(r); err != nil {
		writeJSON(w, http.StatusForbidden, apiError{err.Error()})
		return
	}
	room, err := keysRoom(r.PostFormValue("r"))
	if err != nil {
		jsonError(w, err)
		return
	}
	ctx, cancel := readCtx(r)
	defer cancel()
	res, err := h.act(ctx, r, r.PathValue("action"), room)
	if err != nil {
		jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
