package console

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/queue"
)

// RoomView is a room as its page draws it.
type RoomView struct {
	Room       string        `json:"room"`
	Now        time.Time     `json:"now"` // server clock
	LastSeq    uint64        `json:"last_message_id"`
	Pending    int           `json:"pending"`
	ByPriority []int         `json:"pending_by_priority"`
	StreamLen  int64         `json:"stream_entries"`
	Empty      bool          `json:"empty,omitempty"` // Redis holds nothing of the room
	Paused     bool          `json:"paused,omitempty"`
	PausedAt   *time.Time    `json:"paused_at,omitempty"`
	PausedBy   string        `json:"paused_by,omitempty"`
	PauseNote  string        `json:"pause_reason,omitempty"`
	InFlight   *InFlightView `json:"in_flight,omitempty"`
	Members    []MemberView  `json:"members"`
	Observers  []MemberView  `json:"observers"`
	WaitingOn  []string      `json:"waiting_on"`
	Head       []PendingView `json:"pending_head"`
	// FeedFrom is the stream ID the live feed starts after: the last one
	// possible before the server time of this snapshot, so that nothing
	// appended after it is missed.
	FeedFrom string `json:"feed_from"`
}

// InFlightView is the message the barrier waits on.
type InFlightView struct {
	ID                 uint64     `json:"message_id"`
	StreamID           string     `json:"stream_id"`
	ReleasedAt         time.Time  `json:"released_at"`
	AgeSeconds         float64    `json:"age_seconds"`
	AckDeadline        *time.Time `json:"ack_deadline,omitempty"`
	AckDeadlineSeconds *float64   `json:"ack_deadline_in_seconds,omitempty"`
}

// MemberView is a member or observer with its liveness.
type MemberView struct {
	Client           string  `json:"client"`
	Observer         bool    `json:"observer,omitempty"`
	HeartbeatSeconds float64 `json:"heartbeat_age_seconds"`
	EvictedInSeconds float64 `json:"evicted_in_seconds"`
	// Acked: acked the message in flight (or joined after it); Blocking:
	// the barrier waits on it.
	Acked    bool `json:"acked"`
	Blocking bool `json:"blocking"`
	// AckedSeconds: how long ago it acked (0 when it joined after).
	AckedSeconds float64 `json:"acked_seconds_ago,omitempty"`
}

// PendingView is one message of the pending head, in release order.
type PendingView struct {
	ID         uint64            `json:"message_id"`
	Priority   int               `json:"priority"`
	Producer   string            `json:"producer,omitempty"`
	EnqueuedAt time.Time         `json:"enqueued_at"`
	Headers    map[string]string `json:"headers,omitempty"`
	Payload    Payload           `json:"payload"`
}

func roomParam(r *http.Request) (string, error) {
	return keysRoom(r.URL.Query().Get("r"))
}

func keysRoom(room string) (string, error) {
	if room == "" {
		return "", badRequest("no room: add r=ROOM")
	}
	return room, keys.ValidateRoom(room)
}

func (h *Handler) roomView(ctx context.Context, room string) (RoomView, error) {
	st, err := h.q.RoomState(ctx, room)
	if err != nil {
		return RoomView{}, err
	}
	head, err := h.q.Peek(ctx, room, 0, h.opts.PeekSize)
	if err != nil {
		return RoomView{}, err
	}
	v := RoomView{
		Room: room, Now: st.Now.UTC(), LastSeq: st.LastSeq, Pending: st.Pending,
		ByPriority: st.ByPriority[:], StreamLen: st.StreamLen,
		Members: []MemberView{}, Observers: []MemberView{}, WaitingOn: st.Missing,
		Head:     []PendingView{},
		FeedFrom: feedFrom(st.Now),
	}
	v.Empty = st.LastSeq == 0 && st.Pending == 0 && st.InFlight == nil && len(st.Members) == 0 && len(st.Observers) == 0 && st.StreamLen == 0
	pauseView(&v, st)
	if v.WaitingOn == nil {
		v.WaitingOn = []string{}
	}
	if in := st.InFlight; in != nil {
		v.InFlight = &InFlightView{ID: in.Seq, StreamID: in.StreamID, ReleasedAt: in.ReleasedAt.UTC(), AgeSeconds: in.Age.Seconds()}
		if !in.AckDeadline.IsZero() {
			d, s := in.AckDeadline.UTC(), in.AckDeadline.Sub(st.Now).Seconds()
			v.InFlight.AckDeadline, v.InFlight.AckDeadlineSeconds = &d, &s
		}
	}
	missing := make(map[string]bool, len(st.Missing))
	for _, c := range st.Missing {
		missing[c] = true
	}
	member := func(m queue.Member) MemberView {
		mv := MemberView{
			Client: m.ClientID, Observer: m.Observer, Acked: !m.Observer && m.Acked,
			Blocking: !m.Observer && missing[m.ClientID],
		}
		if !m.LastHeartbeat.IsZero() {
			mv.HeartbeatSeconds = st.Now.Sub(m.LastHeartbeat).Seconds()
		}
		if !m.Deadline.IsZero() {
			mv.EvictedInSeconds = m.Deadline.Sub(st.Now).Seconds()
		}
		if !m.AckedAt.IsZero() {
			mv.AckedSeconds = st.Now.Sub(m.AckedAt).Seconds()
		}
		return mv
	}
	for _, m := range st.Members {
		v.Members = append(v.Members, member(m))
	}
	for _, m := range st.Observers {
		v.Observers = append(v.Observers, member(m))
	}
	for _, p := range head {
		pv := PendingView{ID: p.ID, Priority: p.Priority, Producer: p.Producer, EnqueuedAt: p.EnqueuedAt.UTC(), Headers: p.Headers}
		if p.Err != nil {
			pv.Payload = Payload{Encoding: "invalid", Error: p.Err.Error()}
		} else {
			pv.Payload = h.payload(p)
		}
		v.Head = append(v.Head, pv)
	}
	return v, nil
}

func (h *Handler) apiRoom(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		jsonError(w, err)
		return
	}
	ctx, cancel := readCtx(r)
	defer cancel()
	v, err := h.roomView(ctx, room)
	if err != nil {
		jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// feedFrom is the stream ID a live feed starts after to show everything
// appended after a snapshot taken at now (server time): the last ID of the
// millisecond before. An entry appended after it in the same millisecond
// can be "<ms>-0", which a feed reading after "<ms>-0" would miss; what
// the snapshot already showed from that millisecond may show again.
func feedFrom(now time.Time) string {
	return strconv.FormatInt(now.UnixMilli()-1, 10) + "-" + strconv.FormatUint(math.MaxUint64, 10)
}
