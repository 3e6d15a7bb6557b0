package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/syncfanout/syncfanout/queue"
)

// hostGateway hosts the S subscribers of room in one gateway worker
// (q.NewWorker): the handler records the delivery and acks through the
// worker, which batches the acks of one room into one script call.
func hostGateway(ctx, subCtx context.Context, env *Env, opts queue.Options, room string, k *sink, wg *sync.WaitGroup) ([]func(), error) {
	var closers []func()
	q, err := queue.New(ctx, env.client(0), opts)
	if err != nil {
		return closers, err
	}
	closers = append(closers, func() { _ = q.Close() })
	ids := make([]string, k.spec.S)
	index := make(map[string]int, k.spec.S)
	for i := range ids {
		if ids[i], err = q.CreateClientID(ctx); err != nil {
			return closers, err
		}
		index[ids[i]] = i
	}
	var w *queue.Worker
	w, err = q.NewWorker(queue.WorkerOptions{
		HandleMessage: func(hctx context.Context, clientID string, m *queue.Message) error {
			i := index[clientID]
			k.delivered(i, m.ID)
			k.acking(i, m.ID)
			if err := w.Ack(hctx, clientID, m.AckToken); err != nil {
				if subCtx.Err() == nil && hctx.Err() == nil {
					k.fail(fmt.Errorf("gateway client %d: Ack(%d): %w", i, m.ID, err))
				}
				return err
			}
			k.acked(m.ID)
			return nil
		},
	})
	if err != nil {
		return closers, err
	}
	// Closed before its Queue (the closers run in order).
	closers = append([]func(){func() { _ = w.Close() }}, closers...)
	for i, id := range ids {
		if err := w.Subscribe(ctx, id, room); err != nil {
			return closers, fmt.Errorf("gateway subscribe %d: %w", i, err)
		}
	}
	return closers, nil
}
