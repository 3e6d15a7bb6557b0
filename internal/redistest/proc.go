package redistest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// errHarnessStopped is returned when a process is started after Main has
// stopped the harness.
var errHarnessStopped = errors.New("redistest: harness stopped")

// forkReq asks the forker goroutine to start cmd.
type forkReq struct {
	cmd  *exec.Cmd
	errc chan error
}

// process is one child started by the harness.
type process struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // result of cmd.Wait; read only after done is closed
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group of p (the server and any fork of
// it, such as an AOF rewrite child).
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// wait waits up to d for the process to exit.
func (p *process) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	}
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *process) kill() error {
	p.signal(syscall.SIGKILL)
	if !p.wait(10 * time.Second) {
		return fmt.Errorf("redistest: pid %d did not exit after SIGKILL", p.pid)
	}
	return nil
}

// procs is the registry of everything the harness started.
var procs struct {
	startOnce sync.Once
	reqs      chan forkReq
	quit      chan struct{}
	loopDone  chan struct{}

	mu      sync.Mutex
	stopped bool
	live    map[*process]struct{}
	pids    []int  // every pid ever started, in order
	baseDir string // temp dir holding every server's data dir
}

// forkLoop starts every child of the harness. It runs on one goroutine
// locked to its OS thread: Pdeathsig fires when the thread that forked a
// child dies, not the process, so children must come from a thread that
// lives as long as the harness. The goroutine never unlocks the thread, so
// when it returns (only in Main, after every child has been stopped) the
// thread exits with it.
func forkLoop() {
	runtime.LockOSThread()
	defer close(procs.loopDone)
	for {
		select {
		case r := <-procs.reqs:
			r.errc <- r.cmd.Start()
		case <-procs.quit:
			return
		}
	}
}

// initProcs sets up the registry and starts the forker goroutine, once.
func initProcs() {
	procs.startOnce.Do(func() {
		procs.reqs = make(chan forkReq)
		procs.quit = make(chan struct{})
		procs.loopDone = make(chan struct{})
		procs.live = make(map[*process]struct{})
		go forkLoop()
	})
}

// startProcess starts cmd from the forker thread, records it and reaps it in
// the background.
func startProcess(cmd *exec.Cmd) (*process, error) {
	initProcs()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = sysProcAttr()
	}

	// Hold the lock while forking so that stopAll cannot miss a child that
	// is being started.
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.stopped {
		return nil, errHarnessStopped
	}
	errc := make(chan error, 1)
	procs.reqs <- forkReq{cmd: cmd, errc: errc}
	if err := <-errc; err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	procs.live[p] = struct{}{}
	procs.pids = append(procs.pids, p.pid)
	go func() {
		p.err = cmd.Wait()
		procs.mu.Lock()
		delete(procs.live, p)
		procs.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// startedPIDs returns the pid of every process the harness has started.
func startedPIDs() []int {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	return append([]int(nil), procs.pids...)
}

// baseDir returns the temp dir under which every server gets its data dir,
// creating it on first use. Main removes it.
func baseDir() (string, error) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.baseDir != "" {
		return procs.baseDir, nil
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return "", fmt.Errorf("redistest: %w", err)
	}
	procs.baseDir = dir
	return dir, nil
}

// stopProcesses kills every live child, waits for each to be reaped, ends
// the forker goroutine and removes the data dirs. Later starts fail with
// errHarnessStopped.
func stopProcesses() error {
	initProcs()
	procs.mu.Lock()
	if procs.stopped {
		procs.mu.Unlock()
		return nil
	}
	procs.stopped = true
	live := make([]*process, 0, len(procs.live))
	for p := range procs.live {
		live = append(live, p)
	}
	dir := procs.baseDir
	procs.mu.Unlock()

	var errs []error
	for _, p := range live {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range live {
		if !p.wait(10 * time.Second) {
			errs = append(errs, fmt.Errorf("redistest: pid %d did not exit after SIGKILL", p.pid))
		}
	}
	close(procs.quit)
	<-procs.loopDone
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
