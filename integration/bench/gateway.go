package main

import (
	"context"
	"errors"
	"sync"

	"github.com/syncfanout/syncfanout/queue"
)

// errNoWorker: the gateway worker (q.NewWorker) is not in the engine yet.
var errNoWorker = errors.New("the gateway worker (queue.NewWorker) is not in the engine yet")

func hostGateway(ctx, subCtx context.Context, env *Env, opts queue.Options, room string, k *sink, wg *sync.WaitGroup) ([]func(), error) {
	return nil, errNoWorker
}
