//go:build unix && !linux

package redistest

import "syscall"

// sysProcAttr puts a child in its own process group. Without Pdeathsig
// (Linux only), children outlive a test binary that is killed; Main and the
// test cleanups still stop them on a normal exit.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// helperProcAttr is sysProcAttr for the container helper, which also
// removes its container when its stdin closes with the test binary.
func helperProcAttr() *syscall.SysProcAttr { return sysProcAttr() }
