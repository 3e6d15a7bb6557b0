package console

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/syncfanout/syncfanout/queue"
)

// RoomRow is one room of the rooms list.
type RoomRow struct {
	Room      string `json:"room"`
	Backlog   int    `json:"backlog"`
	Members   int    `json:"members"`
	Observers int    `json:"observers"`
	// InFlight is the message the barrier waits on (0: none), released
	// InFlightSeconds ago by the server clock.
	InFlight        uint64  `json:"in_flight,omitempty"`
	InFlightSeconds float64 `json:"in_flight_seconds,omitempty"`
	// WaitingOn lists the members that have not acked it: who blocks.
	WaitingOn []string `json:"waiting_on"`
	Paused    bool     `json:"paused,omitempty"`
	// Idle rooms hold only history, until Expires (absent: forever).
	Idle    bool       `json:"idle,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
}

// Blocked reports whether a message is in flight and members still owe
// its ack.
func (r RoomRow) Blocked() bool { return r.InFlight != 0 && len(r.WaitingOn) > 0 }

// RoomList is a page of the rooms list.
type RoomList struct {
	Rooms []RoomRow `json:"rooms"`
	// Next is the cursor of the following page ("" after the last).
	Next string `json:"next,omitempty"`
	// Searched counts the rooms of the index looked at for this page;
	// with a filter, a page may stop short of the limit after looking at
	// searchBudget rooms (Partial), and Next goes on from there.
	Searched int  `json:"searched"`
	Partial  bool `json:"partial,omitempty"`
	Totals   struct {
		Rooms     int64 `json:"rooms"`
		IdleRooms int64 `json:"idle_rooms"`
		Backlog   int64 `json:"backlog"`
		Members   int64 `json:"members"`
		Observers int64 `json:"observers"`
		Malformed int64 `json:"malformed"`
	} `json:"totals"`
}

// roomQuery is what the rooms list was asked for.
type roomQuery struct {
	Cursor string
	Limit  int
	Name   string // substring of the room name
	Only   string // "", "blocked", "paused", "backlog" or "idle"
	Sort   string // "" (index order), "room", "backlog", "members", "age", "waiting"
}

var (
	onlyValues = []string{"", "blocked", "paused", "backlog", "idle"}
	sortValues = []string{"", "room", "backlog", "members", "age", "waiting"}
)

// Bounds of one filtered page: rooms of the index looked at, and room
// states read, before the page is returned short with a cursor.
const (
	searchBudget = 5000
	stateBudget  = 500
	stateWorkers = 8
)

func (h *Handler) parseRoomQuery(v url.Values) (roomQuery, error) {
	rq := roomQuery{Cursor: v.Get("cursor"), Limit: h.opts.PageSize, Name: v.Get("q"), Only: v.Get("only"), Sort: v.Get("sort")}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > queue.MaxTopRooms {
			return rq, badRequest("limit %q, want 1..%d", s, queue.MaxTopRooms)
		}
		rq.Limit = n
	}
	if !slices.Contains(onlyValues, rq.Only) {
		return rq, badRequest("only %q, want one of blocked, paused, backlog, idle", rq.Only)
	}
	if !slices.Contains(sortValues, rq.Sort) {
		return rq, badRequest("sort %q, want one of room, backlog, members, age, waiting", rq.Sort)
	}
	return rq, nil
}

// indexMatch filters on what the room index says, before any state read.
func (rq roomQuery) indexMatch(rb queue.RoomBacklog) bool {
	if rq.Name != "" && !strings.Contains(strings.ToLower(rb.Room), strings.ToLower(rq.Name)) {
		return false
	}
	switch rq.Only {
	case "backlog":
		return rb.Backlog > 0
	case "idle":
		return rb.Idle
	case "blocked", "paused":
		return !rb.Idle
	}
	return true
}

func (rq roomQuery) rowMatch(r RoomRow) bool {
	switch rq.Only {
	case "blocked":
		return r.Blocked()
	case "paused":
		return r.Paused
	}
	return true
}

func (h *Handler) listRooms(ctx context.Context, rq roomQuery) (RoomList, error) {
	var list RoomList
	m, err := h.q.Metrics(ctx, 0)
	if err != nil {
		return list, err
	}
	list.Totals.Rooms, list.Totals.IdleRooms = m.KnownRooms, m.IdleRooms
	list.Totals.Backlog, list.Totals.Members, list.Totals.Observers = m.Backlog, m.Members, m.Observers
	list.Totals.Malformed = m.Malformed
	list.Rooms = []RoomRow{}
	cursor, states := rq.Cursor, 0
	for {
		page, err := h.q.Rooms(ctx, cursor, rq.Limit)
		if err != nil {
			return list, err
		}
		var cand []int // indexes into page.Rooms
		for i, rb := range page.Rooms {
			if rq.indexMatch(rb) {
				cand = append(cand, i)
			}
		}
		list.Searched += len(page.Rooms)
		states += len(cand)
		rows, err := h.roomRows(ctx, page.Rooms, cand)
		if err != nil {
			return list, err
		}
		for k, row := range rows {
			if !rq.rowMatch(row) {
				continue
			}
			list.Rooms = append(list.Rooms, row)
			if len(list.Rooms) < rq.Limit {
				continue
			}
			// The page is full in the middle of this chunk: read the
			// chunk again up to this room to get the cursor right after
			// it (cursors count per shard, so only Rooms can make one).
			if i := cand[k]; i < len(page.Rooms)-1 {
				cut, err := h.q.Rooms(ctx, cursor, i+1)
				if err != nil {
					return list, err
				}
				page.Next = cut.Next
			}
			list.Next = page.Next
			sortRows(list.Rooms, rq.Sort)
			return list, nil
		}
		list.Next = page.Next
		if page.Next == "" || rq.Name == "" && rq.Only == "" {
			break
		}
		if list.Searched >= searchBudget || states >= stateBudget {
			list.Partial = true
			break
		}
		cursor = page.Next
	}
	sortRows(list.Rooms, rq.Sort)
	return list, nil
}

// roomRows reads the state of the rooms at idx, a few at a time.
func (h *Handler) roomRows(ctx context.Context, rooms []queue.RoomBacklog, idx []int) ([]RoomRow, error) {
	rows := make([]RoomRow, len(idx))
	errs := make([]error, len(idx))
	sem := make(chan struct{}, stateWorkers)
	var wg sync.WaitGroup
	for k, i := range idx {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			st, err := h.q.RoomState(ctx, rooms[i].Room)
			if err != nil {
				errs[k] = err
				return
			}
			rows[k] = roomRow(rooms[i], st)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func roomRow(rb queue.RoomBacklog, st queue.RoomState) RoomRow {
	r := RoomRow{
		Room: rb.Room, Backlog: st.Pending, Members: len(st.Members), Observers: len(st.Observers),
		WaitingOn: st.Missing, Idle: rb.Idle,
	}
	r.Paused = paused(st)
	if r.WaitingOn == nil {
		r.WaitingOn = []string{}
	}
	if in := st.InFlight; in != nil {
		r.InFlight, r.InFlightSeconds = in.Seq, in.Age.Seconds()
	}
	if rb.Idle && !rb.Expires.IsZero() {
		e := rb.Expires.UTC()
		r.Expires = &e
	}
	return r
}

func sortRows(rows []RoomRow, by string) {
	key := func(r RoomRow) float64 {
		switch by {
		case "backlog":
			return float64(r.Backlog)
		case "members":
			return float64(r.Members)
		case "age":
			return r.InFlightSeconds
		case "waiting":
			return float64(len(r.WaitingOn))
		}
		return 0
	}
	switch by {
	case "":
		return
	case "room":
		slices.SortStableFunc(rows, func(a, b RoomRow) int { return cmp.Compare(a.Room, b.Room) })
	default:
		// Largest first: what needs attention comes on top.
		slices.SortStableFunc(rows, func(a, b RoomRow) int { return cmp.Compare(key(b), key(a)) })
	}
}

func (h *Handler) apiRooms(w http.ResponseWriter, r *http.Request) {
	rq, err := h.parseRoomQuery(r.URL.Query())
	if err != nil {
		jsonError(w, err)
		return
	}
	ctx, cancel := readCtx(r)
	defer cancel()
	list, err := h.listRooms(ctx, rq)
	if err != nil {
		jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}
