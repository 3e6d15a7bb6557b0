package redissyncfanoutqueue

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/syncfanout/syncfanout/queue"
)

// Message is a delivered (or, from Peek, pending) message, shaped as the
// original's.
type Message struct {
	// Data points to the payload as encoding/json decodes it into an
	// interface{}: string, float64, bool, []interface{},
	// map[string]interface{} or nil (a []byte that a queue program sent
	// and that is not JSON stays a []byte). Never nil itself.
	Data *interface{}
	// AckToken is this client's token for this delivery; nil for
	// out-of-band messages, observers and Peek results.
	AckToken *string
	Room     string
	// MessageContext: Timestamp is the enqueue time (Redis server clock,
	// UTC), Latency the time from then to receipt by this process.
	MessageContext struct {
		Timestamp time.Time
		Producer  string
		Latency   time.Duration
	}
}

// encodeData gives data the shape the original's JSON wire format gave it,
// so that every receiver, on this package or on package queue, sees the
// types an original receiver saw: a struct arrives as a map keyed by its
// json tags, every number as float64. The result is sent as a msgpack value,
// which a queue program decodes natively (Message.Decode).
func encodeData(data interface{}) (interface{}, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %T: %v", queue.ErrEncode, data, err)
	}
	var v interface{}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %T: %v", queue.ErrEncode, data, err)
	}
	if v == nil {
		return nil, fmt.Errorf("%w: nil payload (JSON null)", queue.ErrEncode)
	}
	return v, nil
}

// payload is what queue.Message and queue.PendingMessage have in common.
type payload interface {
	Raw() bool
	Data() []byte
	Decode(v any) error
}

// decodeData reads any payload into the JSON shapes of Message.Data. A
// []byte sent by a queue program is decoded as JSON when it is JSON and
// kept as []byte otherwise; a msgpack value sent by a queue program is
// brought to the JSON shapes too (integers become float64), so a receiver
// here sees one set of types whoever sent the message.
func decodeData(p payload) (interface{}, error) {
	if p.Raw() {
		raw := p.Data()
		if !json.Valid(raw) {
			return append([]byte(nil), raw...), nil
		}
		var v interface{}
		err := json.Unmarshal(raw, &v)
		return v, err
	}
	var v interface{}
	if err := p.Decode(&v); err != nil {
		return nil, err
	}
	// A value with no JSON shape (a msgpack map with non-string keys, say)
	// is kept as msgpack decoded it.
	b, err := json.Marshal(v)
	if err != nil {
		return v, nil
	}
	var out interface{}
	if json.Unmarshal(b, &out) != nil {
		return v, nil
	}
	return out, nil
}

func fromDelivered(m *queue.Message) (*Message, error) {
	data, err := decodeData(m)
	if err != nil {
		return nil, err
	}
	out := &Message{Data: &data, Room: m.Room}
	if m.AckToken != "" {
		token := m.AckToken
		out.AckToken = &token
	}
	out.MessageContext.Timestamp = m.EnqueuedAt.UTC()
	out.MessageContext.Producer = m.Producer
	out.MessageContext.Latency = m.Latency()
	return out, nil
}

func fromPending(p *queue.PendingMessage, now time.Time) (*Message, error) {
	data, err := decodeData(p)
	if err != nil {
		return nil, err
	}
	out := &Message{Data: &data, Room: p.Room}
	out.MessageContext.Timestamp = p.EnqueuedAt.UTC()
	out.MessageContext.Producer = p.Producer
	out.MessageContext.Latency = now.Sub(p.EnqueuedAt)
	return out, nil
}
