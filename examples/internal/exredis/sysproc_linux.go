//go:build linux

package exredis

import (
	"os"
	"syscall"
	"unsafe"
)

// The server gets its own process group, so a Ctrl-C in the terminal
// reaches only the example (which then stops the server in order), and
// Pdeathsig kills it if the example dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// isTerminal reports whether f is a terminal (TCGETS succeeds on it);
// /dev/null, pipes and files are not.
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TCGETS), uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
