//go:build linux

package redistest

import "syscall"

// sysProcAttr makes a child die with the thread that started it (Pdeathsig:
// the forker thread lives as long as the harness, see forkLoop) and puts it
// in its own process group, so that a kill reaches its forks too.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// helperProcAttr is sysProcAttr for the container helper: SIGTERM rather
// than SIGKILL when the harness dies, so that it can remove its container
// first.
func helperProcAttr() *syscall.SysProcAttr {
	a := sysProcAttr()
	a.Pdeathsig = syscall.SIGTERM
	return a
}
