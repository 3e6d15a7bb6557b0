package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/syncfanout/syncfanout/console"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// The console mounted under a prefix of the application's own mux; in a
// real service, wrap it in your authentication. Read-only here: admin
// POSTs are refused.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, done, err := redistest.ExampleBackend()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	if _, err := q.Send(ctx, "lobby", "hello"); err != nil {
		fmt.Println(err)
		return
	}

	h, err := console.New(q, console.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/ops/syncfanout/", http.StripPrefix("/ops/syncfanout", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/ops/syncfanout/api/rooms")
	if err != nil {
		fmt.Println(err)
		return
	}
	var list console.RoomList
	_ = json.NewDecoder(res.Body).Decode(&list)
	res.Body.Close()
	for _, r := range list.Rooms {
		fmt.Printf("%s idle=%v\n", r.Room, r.Idle)
	}

	res, err = http.Post(srv.URL+"/ops/syncfanout/api/admin/pause", "application/x-www-form-urlencoded", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	res.Body.Close()
	fmt.Println(res.Status)
	// Output:
	// lobby idle=true
	// 403 Forbidden
}
