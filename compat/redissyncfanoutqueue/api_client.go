package redissyncfanoutqueue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/queue"
)

// GetApiMetricsOptions select what GetMetrics returns.
type GetApiMetricsOptions struct {
	// TopRoomsLimit: at most this many rooms in ApiMetrics.TopRooms
	// (clamped to 0..queue.MaxTopRooms).
	TopRoomsLimit int
}

// RoomMetrics is one entry of ApiMetrics.TopRooms.
type RoomMetrics struct {
	Room                         string
	PendingMessagesBacklogLength int64
}

// ApiMetrics is a deployment-wide snapshot.
type ApiMetrics struct {
	// KnownRoomsCount counts the rooms with members, a backlog or a message
	// in flight (the original counted rooms with a backlog only).
	KnownRoomsCount int64

	// TopRooms lists the rooms with a backlog, largest first, at most
	// TopRoomsLimit of them; TopRoomsPendingMessagesBacklogLength is the sum
	// of their backlogs.
	TopRooms                             []*RoomMetrics
	TopRoomsPendingMessagesBacklogLength int64
}

// RoomState is a snapshot of one room.
type RoomState struct {
	Room string
	// KnownClients maps each member's client ID to its last heartbeat.
	KnownClients map[string]time.Time
	// AcknowledgedClients maps the members that acked the in-flight message
	// (every member when nothing is in flight) to the time of their ack,
	// or of their last heartbeat when they joined after the release.
	AcknowledgedClients          map[string]time.Time
	PendingMessagesBacklogLength int64
}

// RedisQueueApiClient is the original's client for producers, membership
// and acks.
type RedisQueueApiClient interface {
	CreateClientID(ctx context.Context) (string, error)
	Close() error
	Send(ctx context.Context, producerId string, room string, data interface{}, priority int) error
	SendOutOfBand(ctx context.Context, producerId string, room string, data interface{}) error
	Peek(ctx context.Context, room string, offset int, limit int) ([]*Message, error)
	GetMetrics(ctx context.Context, options *GetApiMetricsOptions) (*ApiMetrics, error)
	Ping(ctx context.Context, clientId string) error
	AckMessage(ctx context.Context, clientId string, ackToken *string) error
	Subscribe(ctx context.Context, clientId string, room string) error
	Unsubscribe(ctx context.Context, clientId string, room string) error
	GetRoomState(ctx context.Context, room string) (*RoomState, error)
}

type apiClient struct {
	q         *queue.Queue
	rdb       redis.UniversalClient
	ownsRedis bool
	once      sync.Once
	closeErr  error
}

// NewApiClient opens a client on a queue.Queue of its own. Its background
// housekeeping runs until Close, whatever happens to ctx afterwards.
func NewApiClient(ctx context.Context, options *ApiOptions) (RedisQueueApiClient, error) {
	if err := options.Validate(); err != nil {
		return nil, err
	}
	qo, err := options.queueOptions()
	if err != nil {
		return nil, err
	}
	q, rdb, owns, err := openQueue(ctx, options.RedisClient, options.RedisOptions, qo)
	if err != nil {
		return nil, err
	}
	return &apiClient{q: q, rdb: rdb, ownsRedis: owns}, nil
}

// Queue returns the queue.Queue under a client made by NewApiClient, for
// the calls the original API lacks (IDs of sent messages, History, Tail,
// observers...), or nil for any other RedisQueueApiClient.
func Queue(c RedisQueueApiClient) *queue.Queue {
	if ac, ok := c.(*apiClient); ok {
		return ac.q
	}
	return nil
}

func (c *apiClient) CreateClientID(ctx context.Context) (string, error) {
	return c.q.CreateClientID(ctx)
}

// Close stops the client and closes the Redis client it opened. It is
// idempotent. Subscribed clients stay members until they unsubscribe or
// time out, as in the original.
func (c *apiClient) Close() error {
	c.once.Do(func() {
		c.closeErr = c.q.Close()
		if c.ownsRedis {
			if err := c.rdb.Close(); c.closeErr == nil {
				c.closeErr = err
			}
		}
	})
	return c.closeErr
}

// mapPriority brings the original's unbounded priorities into queue's
// range. Both release the lowest number first; values below MinPriority or
// above MaxPriority share the end level and go out in send order there.
func mapPriority(p int) int {
	return min(max(p, queue.MinPriority), queue.MaxPriority)
}

func (c *apiClient) Send(ctx context.Context, producerId string, room string, data interface{}, priority int) error {
	v, err := encodeData(data)
	if err != nil {
		return err
	}
	_, err = c.q.Send(ctx, room, v, queue.Priority(mapPriority(priority)), queue.Producer(producerId))
	return err
}

func (c *apiClient) SendOutOfBand(ctx context.Context, producerId string, room string, data interface{}) error {
	v, err := encodeData(data)
	if err != nil {
		return err
	}
	_, err = c.q.SendOutOfBand(ctx, room, v, queue.Producer(producerId))
	return err
}

func (c *apiClient) Peek(ctx context.Context, room string, offset int, limit int) ([]*Message, error) {
	ps, err := c.q.Peek(ctx, room, offset, limit)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]*Message, 0, len(ps))
	for _, p := range ps {
		m, err := fromPending(p, now)
		if err != nil {
			return out, fmt.Errorf("%w: room %q: pending message %d: %v", queue.ErrDecode, room, p.ID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func (c *apiClient) GetMetrics(ctx context.Context, options *GetApiMetricsOptions) (*ApiMetrics, error) {
	limit := 0
	if options != nil {
		limit = min(max(options.TopRoomsLimit, 0), queue.MaxTopRooms)
	}
	m, err := c.q.Metrics(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := &ApiMetrics{KnownRoomsCount: m.KnownRooms}
	for _, r := range m.TopRooms {
		if r.Backlog <= 0 {
			continue
		}
		out.TopRooms = append(out.TopRooms, &RoomMetrics{Room: r.Room, PendingMessagesBacklogLength: r.Backlog})
		out.TopRoomsPendingMessagesBacklogLength += r.Backlog
	}
	return out, nil
}

func (c *apiClient) Ping(ctx context.Context, clientId string) error {
	return c.q.Ping(ctx, clientId)
}

func (c *apiClient) AckMessage(ctx context.Context, clientId string, ackToken *string) error {
	if ackToken == nil {
		return fmt.Errorf("%w: nil ack token (out-of-band messages are not acked)", queue.ErrInvalidToken)
	}
	return c.q.Ack(ctx, clientId, *ackToken)
}

func (c *apiClient) Subscribe(ctx context.Context, clientId string, room string) error {
	return c.q.Subscribe(ctx, clientId, room)
}

func (c *apiClient) Unsubscribe(ctx context.Context, clientId string, room string) error {
	return c.q.Unsubscribe(ctx, clientId, room)
}

func (c *apiClient) GetRoomState(ctx context.Context, room string) (*RoomState, error) {
	st, err := c.q.RoomState(ctx, room)
	if err != nil {
		return nil, err
	}
	out := &RoomState{
		Room:                         st.Room,
		KnownClients:                 make(map[string]time.Time, len(st.Members)),
		AcknowledgedClients:          make(map[string]time.Time, len(st.Members)),
		PendingMessagesBacklogLength: int64(st.Pending),
	}
	for _, m := range st.Members {
		out.KnownClients[m.ClientID] = m.LastHeartbeat
		switch {
		case st.InFlight != nil && !m.Acked:
		case !m.AckedAt.IsZero():
			out.AcknowledgedClients[m.ClientID] = m.AckedAt
		default:
			out.AcknowledgedClients[m.ClientID] = m.LastHeartbeat
		}
	}
	return out, nil
}
